// Reads and checks the controller's INI configuration file.

#include "controller/config.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <sstream>

#include "pgbv/wire_codec.hpp"

namespace pgbv::ctl {
namespace {

struct ConfigError {
    std::string message;
};

[[noreturn]] void fail(const std::string& where, const std::string& what) {
    throw ConfigError{where + ": " + what};
}

std::string trim(std::string_view s) {
    const auto first = s.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) return {};
    const auto last = s.find_last_not_of(" \t\r\n");
    return std::string(s.substr(first, last - first + 1));
}

std::string lower(std::string s) {
    for (char& c : s)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

bool all_digits(std::string_view s) {
    return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

// A path segment list for a Vault mount ("database", "team/db"): no empty segment, no
// "." or "..", only characters that need no URL escaping.
bool valid_mount(std::string_view s) {
    if (s.empty() || s.front() == '/' || s.back() == '/') return false;
    std::string_view rest = s;
    while (!rest.empty()) {
        const auto slash = rest.find('/');
        const std::string_view seg = rest.substr(0, slash);
        if (seg.empty() || seg == "." || seg == "..") return false;
        for (char c : seg) {
            if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
                return false;
            }
        }
        if (slash == std::string_view::npos) break;
        rest = rest.substr(slash + 1);
    }
    return true;
}

bool valid_role(std::string_view s) {
    return valid_mount(s) && s.find('/') == std::string_view::npos;
}

// Where the file's problems are reported and its relative paths anchored.
class Parser {
public:
    Parser(std::string path, const Getenv& getenv) : path_(std::move(path)), getenv_(getenv) {
        const auto slash = path_.rfind('/');
        dir_ = slash == std::string::npos ? "." : path_.substr(0, slash == 0 ? 1 : slash);
        config_.path = path_;
    }

    Config run(std::string_view text) {
        std::size_t pos = 0;
        int line_no = 0;
        while (pos <= text.size()) {
            auto nl = text.find('\n', pos);
            if (nl == std::string_view::npos) nl = text.size();
            ++line_no;
            handle_line(text.substr(pos, nl - pos), line_no);
            pos = nl + 1;
        }
        apply_environment();
        check_whole();
        return std::move(config_);
    }

private:
    enum class Section { kNone, kVault, kController, kSet };

    std::string at(int line) const { return path_ + ":" + std::to_string(line); }

    void handle_line(std::string_view raw, int line) {
        const std::string text = trim(raw);
        const std::string_view view = text;
        if (text.empty() || text[0] == '#' || text[0] == ';') return;
        if (text[0] == '[') {
            if (text.back() != ']') fail(at(line), "section header lacks its closing ']'");
            open_section(trim(view.substr(1, text.size() - 2)), line);
            return;
        }
        const auto eq = text.find('=');
        if (eq == std::string::npos) {
            fail(at(line), "expected 'key = value' or '[section]', got a line without '='");
        }
        const std::string key = lower(trim(view.substr(0, eq)));
        std::string value = trim(view.substr(eq + 1));
        if (key.empty()) fail(at(line), "missing key before '='");
        if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
            value.back() == value.front()) {
            value = value.substr(1, value.size() - 2);
        }
        if (section_ == Section::kNone) {
            fail(at(line), "key '" + key +
                                   "' outside of any section; put it under [vault], "
                                   "[controller] or [set.<name>]");
        }
        if (value.empty()) fail(at(line), "key '" + key + "' has no value");
        auto [it, fresh] = keys_.emplace(key, line);
        if (!fresh) {
            fail(at(line), "duplicate key '" + key + "' in [" + section_name_ +
                                   "] (first set at line " + std::to_string(it->second) + ")");
        }
        switch (section_) {
            case Section::kVault:
                vault_key(key, value, line);
                break;
            case Section::kController:
                controller_key(key, value, line);
                break;
            case Section::kSet:
                set_key(key, value, line);
                break;
            case Section::kNone:
                break;
        }
    }

    void open_section(const std::string& name, int line) {
        keys_.clear();
        section_name_ = name;
        auto [it, fresh] = sections_.emplace(name, line);
        if (!fresh) {
            const bool is_set = name.rfind("set.", 0) == 0;
            fail(at(line), is_set ? "duplicate credential set '" + name.substr(4) +
                                            "' (first defined at line " +
                                            std::to_string(it->second) + ")"
                                  : "duplicate section [" + name + "] (first at line " +
                                            std::to_string(it->second) + ")");
        }
        if (name == "vault") {
            section_ = Section::kVault;
            vault_line_ = line;
        } else if (name == "controller") {
            section_ = Section::kController;
        } else if (name.rfind("set.", 0) == 0) {
            const std::string set = name.substr(4);
            if (!wire::valid_set_name(set)) {
                fail(at(line),
                     "credential set name '" + set + "' must be 1-63 characters of [A-Za-z0-9_.-]");
            }
            section_ = Section::kSet;
            config_.sets.emplace_back().name = set;
            set_lines_.push_back(line);
            set_key_lines_.emplace_back();
        } else {
            fail(at(line),
                 "unknown section [" + name + "]; expected [vault], [controller] or [set.<name>]");
        }
    }

    [[noreturn]] void unknown_key(const std::string& key, int line) {
        fail(at(line), "unknown key '" + key + "' in [" + section_name_ +
                               "] (see controller/CONFIG.md for the valid keys)");
    }

    std::string resolve(const std::string& p) const {
        if (p.empty() || p[0] == '/') return p;
        return dir_ + "/" + p;
    }

    // Checks now that a file the controller will need can be read.
    std::string readable_file(const std::string& key, const std::string& value,
                              const std::string& where) const {
        std::string p = resolve(value);
        const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            fail(where, key + " '" + p + "': cannot read it: " + std::strerror(errno));
        }
        struct stat st {};
        const bool dir = ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
        ::close(fd);
        if (dir) fail(where, key + " '" + p + "' is a directory, expected a file");
        return p;
    }

    std::string readable_dir(const std::string& key, const std::string& value,
                             const std::string& where) const {
        std::string p = resolve(value);
        struct stat st {};
        if (::stat(p.c_str(), &st) != 0) {
            fail(where, key + " '" + p + "': cannot read it: " + std::strerror(errno));
        }
        if (!S_ISDIR(st.st_mode)) fail(where, key + " '" + p + "' is not a directory");
        return p;
    }

    Duration duration(const std::string& key, const std::string& value, int line,
                      bool allow_zero) const {
        auto d = parse_duration(value);
        if (!d) {
            fail(at(line),
                 key + " '" + value + "' is not a duration (examples: 10, 10s, 500ms, 5m, 1h)");
        }
        if (!allow_zero && *d <= Duration::zero()) fail(at(line), key + " must be above zero");
        return *d;
    }

    bool boolean(const std::string& key, const std::string& value, int line) const {
        const std::string v = lower(value);
        if (v == "true" || v == "yes" || v == "on" || v == "1") return true;
        if (v == "false" || v == "no" || v == "off" || v == "0") return false;
        fail(at(line), key + " '" + value + "' must be true or false");
    }

    void vault_key(const std::string& key, const std::string& value, int line) {
        VaultSettings& v = config_.vault;
        if (key == "address") {
            auto a = normalize_vault_address(value);
            if (!a) {
                fail(at(line), "address '" + value +
                                       "' is not a valid Vault URL; expected "
                                       "http(s)://host[:port]");
            }
            v.address = *a;
        } else if (key == "namespace") {
            v.name_space = value;
        } else if (key == "ca_file") {
            v.ca_file = readable_file(key, value, at(line));
        } else if (key == "ca_path") {
            v.ca_path = readable_dir(key, value, at(line));
        } else if (key == "auth_method") {
            if (value == "token") {
                v.auth_method = AuthMethod::kToken;
            } else if (value == "approle") {
                v.auth_method = AuthMethod::kAppRole;
            } else if (value == "kubernetes") {
                v.auth_method = AuthMethod::kKubernetes;
            } else if (value == "jwt") {
                v.auth_method = AuthMethod::kJwt;
            } else if (value == "cert") {
                v.auth_method = AuthMethod::kCert;
            } else {
                fail(at(line), "auth_method '" + value +
                                       "' is not supported; use token, approle, kubernetes, "
                                       "jwt or cert");
            }
            auth_line_ = line;
        } else if (key == "token_file") {
            v.token_file = readable_file(key, value, at(line));
        } else if (key == "role_id_file") {
            v.role_id_file = readable_file(key, value, at(line));
        } else if (key == "secret_id_file") {
            v.secret_id_file = readable_file(key, value, at(line));
        } else if (key == "approle_mount" || key == "auth_mount") {
            if (!valid_mount(value)) {
                fail(at(line), key + " '" + value +
                                       "' is not a valid mount path without \"auth/\" "
                                       "([A-Za-z0-9_.-] segments separated by '/')");
            }
            if (mount_line_ != 0) {
                fail(at(line), key + " repeats the mount set at line " +
                                       std::to_string(mount_line_) +
                                       " (approle_mount is the old name of auth_mount); keep one");
            }
            mount_line_ = line;
            mount_key_ = key;
            v.auth_mount = value;
        } else if (key == "auth_role") {
            if (!valid_role(value)) {
                fail(at(line), "auth_role '" + value + "' must be characters of [A-Za-z0-9_.-]");
            }
            v.auth_role = value;
            role_line_ = line;
        } else if (key == "jwt_file") {
            v.jwt_file = readable_file(key, value, at(line));
            jwt_line_ = line;
        } else if (key == "secret_id_wrapped") {
            v.secret_id_wrapped = boolean(key, value, line);
        } else if (key == "client_cert") {
            v.client_cert = readable_file(key, value, at(line));
        } else if (key == "client_key") {
            v.client_key = readable_file(key, value, at(line));
        } else if (key == "tls_server_name") {
            if (value.find_first_of(" \t/:@[]") != std::string::npos) {
                fail(at(line), "tls_server_name '" + value +
                                       "' must be a host name (no port, scheme or path)");
            }
            v.tls_server_name = value;
        } else if (key == "tls_skip_verify") {
            v.tls_skip_verify = boolean(key, value, line);
        } else if (key == "health_interval") {
            v.health_interval = duration(key, value, line, true);
        } else if (key == "request_timeout") {
            v.request_timeout = duration(key, value, line, false);
        } else if (key == "retry_min") {
            v.retry_min = duration(key, value, line, false);
            retry_line_ = line;
        } else if (key == "retry_max") {
            v.retry_max = duration(key, value, line, false);
            retry_line_ = line;
        } else {
            unknown_key(key, line);
        }
    }

    void controller_key(const std::string& key, const std::string& value, int line) {
        ControllerSettings& c = config_.controller;
        if (key == "plugin_socket") {
            c.plugin_socket = socket_path(key, value, line);
        } else if (key == "plugin_socket_mode") {
            if (value.find_first_not_of("01234567") != std::string::npos || value.size() > 4) {
                fail(at(line), "plugin_socket_mode '" + value + "' is not an octal mode like 0660");
            }
            c.plugin_socket_mode = static_cast<mode_t>(std::stoul(value, nullptr, 8));
        } else if (key == "plugin_socket_group") {
            c.plugin_socket_group = group_id(value, line);
        } else if (key == "allowed_uids") {
            c.allowed_uids = user_ids(value, line);
        } else if (key == "max_plugin_clients") {
            if (!all_digits(value) || value.size() > 5 || std::stoi(value) < 1 ||
                std::stoi(value) > 1024) {
                fail(at(line),
                     "max_plugin_clients '" + value + "' must be a number from 1 to 1024");
            }
            c.max_plugin_clients = std::stoi(value);
        } else if (key == "admin_socket") {
            c.admin_socket = socket_path(key, value, line);
        } else if (key == "admin_socket_mode") {
            // Opening it wider only lets others reach the peer uid check, which refuses them.
            if (value.find_first_not_of("01234567") != std::string::npos || value.size() > 4) {
                fail(at(line), "admin_socket_mode '" + value + "' is not an octal mode like 0600");
            }
            c.admin_socket_mode = static_cast<mode_t>(std::stoul(value, nullptr, 8));
        } else if (key == "http_listen") {
            if (lower(value) == "off") {
                c.http_listen.reset();
            } else {
                c.http_listen = parse_listen_address(value);
                if (!c.http_listen) {
                    fail(at(line), "http_listen '" + value +
                                           "' must be host:port, [IPv6]:port (port 0-65535, 0: "
                                           "any free port) or off");
                }
            }
        } else if (key == "log_format") {
            auto format = log::parse_format(value);
            if (!format) fail(at(line), "log_format '" + value + "' must be text or json");
            c.log_format = *format;
        } else if (key == "revoke_on_shutdown") {
            c.revoke_on_shutdown = boolean(key, value, line);
        } else if (key == "shutdown_timeout") {
            c.shutdown_timeout = duration(key, value, line, true);
        } else if (key == "log_level") {
            auto level = log::parse_level(value);
            if (!level) {
                fail(at(line), "log_level '" + value + "' must be error, warning, info or debug");
            }
            c.log_level = *level;
        } else {
            unknown_key(key, line);
        }
    }

    void set_key(const std::string& key, const std::string& value, int line) {
        SetSettings& s = config_.sets.back();
        // Which keys fit which kind is checked once the whole section is read (check_set),
        // since kind may come after them.
        set_key_lines_.back()[key] = line;
        if (key == "kind") {
            const std::string k = lower(value);
            if (k == "dynamic") {
                s.kind = SecretKind::kDynamic;
            } else if (k == "static") {
                s.kind = SecretKind::kStatic;
            } else if (k == "kv") {
                s.kind = SecretKind::kKv;
            } else {
                fail(at(line), "kind '" + value +
                                       "' must be dynamic (database dynamic role), static "
                                       "(database static role) or kv (KV version 2 secret)");
            }
        } else if (key == "path") {
            if (!valid_mount(value)) {
                fail(at(line), "path '" + value +
                                       "' is not a valid secret path ([A-Za-z0-9_.-] segments "
                                       "separated by '/', without the mount or 'data/')");
            }
            s.path = value;
        } else if (key == "username_field") {
            s.username_field = value;
        } else if (key == "password_field") {
            s.password_field = value;
        } else if (key == "refresh_interval") {
            s.refresh_interval = duration(key, value, line, false);
        } else if (key == "mount") {
            if (!valid_mount(value)) {
                fail(at(line), "mount '" + value +
                                       "' is not a valid mount path ([A-Za-z0-9_.-] segments "
                                       "separated by '/')");
            }
            s.mount = value;
        } else if (key == "role") {
            if (!valid_role(value)) {
                fail(at(line), "role '" + value + "' must be characters of [A-Za-z0-9_.-]");
            }
            s.role = value;
        } else if (key == "rotation_margin") {
            s.rotation_margin = duration(key, value, line, true);
        } else {
            unknown_key(key, line);
        }
    }

    std::string socket_path(const std::string& key, const std::string& value, int line) const {
        std::string p = resolve(value);
        if (p.size() >= 108) {
            fail(at(line),
                 key + " '" + p + "' is longer than a Unix socket path may be (107 bytes)");
        }
        return p;
    }

    gid_t group_id(const std::string& value, int line) const {
        if (all_digits(value)) return static_cast<gid_t>(std::stoul(value));
        struct group gr {};
        struct group* found = nullptr;
        char buf[4096];
        if (getgrnam_r(value.c_str(), &gr, buf, sizeof buf, &found) != 0 || found == nullptr) {
            fail(at(line), "plugin_socket_group '" + value + "' is not a known group");
        }
        return found->gr_gid;
    }

    std::vector<uid_t> user_ids(const std::string& value, int line) const {
        std::vector<uid_t> uids;
        std::string item;
        std::istringstream in(value);
        while (std::getline(in, item, ',')) {
            std::istringstream words(item);
            std::string word;
            while (words >> word) {
                if (all_digits(word) && word.size() <= 10) {
                    uids.push_back(static_cast<uid_t>(std::stoul(word)));
                    continue;
                }
                struct passwd pw {};
                struct passwd* found = nullptr;
                char buf[4096];
                if (getpwnam_r(word.c_str(), &pw, buf, sizeof buf, &found) != 0 || !found) {
                    fail(at(line),
                         "allowed_uids: '" + word + "' is neither a uid nor a known user");
                }
                uids.push_back(found->pw_uid);
            }
        }
        if (uids.empty()) fail(at(line), "allowed_uids lists no user");
        return uids;
    }

    const char* env(const char* name) const {
        const char* v = getenv_ ? getenv_(name) : nullptr;
        return (v != nullptr && *v != '\0') ? v : nullptr;
    }

    void apply_environment() {
        VaultSettings& v = config_.vault;
        if (const char* addr = env("VAULT_ADDR")) {
            auto a = normalize_vault_address(addr);
            if (!a) {
                fail("VAULT_ADDR", std::string("'") + addr +
                                           "' is not a valid Vault URL; expected "
                                           "http(s)://host[:port]");
            }
            v.address = *a;
        }
        if (const char* ca = env("VAULT_CACERT"))
            v.ca_file = readable_file("file", ca, "VAULT_CACERT");
        if (const char* ca = env("VAULT_CAPATH"))
            v.ca_path = readable_dir("directory", ca, "VAULT_CAPATH");
        if (const char* ns = env("VAULT_NAMESPACE")) v.name_space = ns;
        if (const char* f = env("VAULT_CLIENT_CERT"))
            v.client_cert = readable_file("file", f, "VAULT_CLIENT_CERT");
        if (const char* f = env("VAULT_CLIENT_KEY"))
            v.client_key = readable_file("file", f, "VAULT_CLIENT_KEY");
        if (const char* name = env("VAULT_TLS_SERVER_NAME")) v.tls_server_name = name;
        if (const char* skip = env("VAULT_SKIP_VERIFY")) {
            const std::string s = lower(skip);
            if (s == "true" || s == "1" || s == "yes" || s == "on") {
                v.tls_skip_verify = true;
            } else if (s == "false" || s == "0" || s == "no" || s == "off") {
                v.tls_skip_verify = false;
            } else {
                fail("VAULT_SKIP_VERIFY", std::string("'") + skip + "' must be true or false");
            }
        }
        if (v.auth_method == AuthMethod::kToken && env("VAULT_TOKEN") != nullptr) {
            v.token_from_env = true;
        }
    }

    // The keys each auth method needs, and those it does not use.
    void check_auth(const std::string& vault_at, const std::string& auth_at) {
        VaultSettings& v = config_.vault;
        const std::string method = auth_method_name(v.auth_method);
        const bool role_based =
                v.auth_method == AuthMethod::kKubernetes || v.auth_method == AuthMethod::kJwt;
        if (mount_key_ == "approle_mount" && v.auth_method != AuthMethod::kAppRole) {
            fail(at(mount_line_),
                 "approle_mount is only for auth_method approle; use auth_mount "
                 "for auth_method " +
                         method);
        }
        if (v.auth_mount.empty()) v.auth_mount = method;
        if (v.auth_method == AuthMethod::kAppRole) v.approle_mount = v.auth_mount;
        if (v.auth_method == AuthMethod::kToken && mount_line_ != 0) {
            fail(at(mount_line_), mount_key_ +
                                          " is not used by auth_method token: the token is "
                                          "given, not obtained by a login; remove it");
        }
        if (!v.auth_role.empty() && !role_based && v.auth_method != AuthMethod::kCert) {
            fail(at(role_line_), "auth_role is not used by auth_method " + method +
                                         (v.auth_method == AuthMethod::kAppRole
                                                  ? ": the AppRole is chosen by role_id_file"
                                                  : ": the token is given, not obtained by a "
                                                    "login") +
                                         "; remove it");
        }
        if (role_based && v.auth_role.empty()) {
            fail(auth_at, "auth_method " + method +
                                  " needs auth_role in [vault]: the name of the role in "
                                  "Vault (auth/" +
                                  v.auth_mount + "/role/<name>)");
        }
        if (!v.jwt_file.empty() && !role_based) {
            fail(at(jwt_line_), "jwt_file is not used by auth_method " + method + "; remove it");
        }
        if (v.auth_method == AuthMethod::kKubernetes && v.jwt_file.empty()) {
            const std::string path = "/var/run/secrets/kubernetes.io/serviceaccount/token";
            if (::access(path.c_str(), R_OK) != 0) {
                fail(auth_at, "auth_method kubernetes reads the pod's service-account token from " +
                                      path + " (the default jwt_file), which cannot be read: " +
                                      std::strerror(errno) +
                                      "; mount the token there (automountServiceAccountToken "
                                      "or a projected volume) or set jwt_file in [vault]");
            }
            v.jwt_file = path;
        }
        if (v.auth_method == AuthMethod::kJwt && v.jwt_file.empty()) {
            fail(auth_at, "auth_method jwt needs jwt_file in [vault]: the file holding the JWT");
        }
        if (v.secret_id_wrapped && v.auth_method != AuthMethod::kAppRole) {
            fail(vault_at, "secret_id_wrapped is only for auth_method approle");
        }
        if (v.client_cert.empty() != v.client_key.empty()) {
            fail(vault_at, v.client_cert.empty()
                                   ? "client_key is set but client_cert is not: give both "
                                     "(or VAULT_CLIENT_CERT and VAULT_CLIENT_KEY)"
                                   : "client_cert is set but client_key is not: give both "
                                     "(or VAULT_CLIENT_CERT and VAULT_CLIENT_KEY)");
        }
        if (v.auth_method == AuthMethod::kCert && v.client_cert.empty()) {
            fail(auth_at,
                 "auth_method cert needs client_cert and client_key in [vault] (or "
                 "VAULT_CLIENT_CERT and VAULT_CLIENT_KEY): the TLS client certificate "
                 "Vault's cert auth method checks");
        }
        if (v.auth_method == AuthMethod::kCert && v.address.rfind("https://", 0) != 0) {
            fail(vault_at,
                 "auth_method cert needs an https:// Vault address: the client "
                 "certificate travels in TLS");
        }
    }

    void check_whole() {
        const VaultSettings& v = config_.vault;
        if (vault_line_ == 0 && !env("VAULT_ADDR")) {
            fail(path_,
                 "no [vault] section, and VAULT_ADDR is not set: the controller needs "
                 "Vault's address");
        }
        const std::string vault_at = vault_line_ ? at(vault_line_) : path_;
        if (v.address.empty()) {
            fail(vault_at, "[vault] address is not set (nor is VAULT_ADDR)");
        }
        if (v.retry_min > v.retry_max) {
            fail(at(retry_line_), "retry_min must not be above retry_max");
        }
        const std::string auth_at = auth_line_ ? at(auth_line_) : vault_at;
        if (v.auth_method == AuthMethod::kToken) {
            if (!v.token_from_env && v.token_file.empty()) {
                fail(auth_at,
                     "auth_method token needs a token: set token_file in [vault] or "
                     "the VAULT_TOKEN environment variable");
            }
        } else if (v.auth_method == AuthMethod::kAppRole) {
            if (v.role_id_file.empty()) {
                fail(auth_at, "auth_method approle needs role_id_file in [vault]");
            }
            if (v.secret_id_file.empty()) {
                fail(auth_at, "auth_method approle needs secret_id_file in [vault]");
            }
        }
        check_auth(vault_at, auth_at);
        if (config_.controller.plugin_socket.empty()) {
            fail(path_,
                 "[controller] plugin_socket is not set: the plugin needs a socket to "
                 "connect to");
        }
        if (config_.controller.allowed_uids.empty()) {
            config_.controller.allowed_uids.push_back(::geteuid());
        }
        if (config_.sets.empty()) {
            fail(path_, "no credential set: add a [set.<name>] section with a role");
        }
        for (std::size_t i = 0; i < config_.sets.size(); ++i)
            check_set(i);
    }

    // The keys of [set.<name>] against its kind.
    void check_set(std::size_t i) {
        SetSettings& s = config_.sets[i];
        const std::map<std::string, int>& keys = set_key_lines_[i];
        const std::string where = "[set." + s.name + "]";
        const std::string kind = secret_kind_name(s.kind);
        auto refuse = [&](const char* key, const std::string& why) {
            const auto it = keys.find(key);
            if (it == keys.end()) return;
            fail(at(it->second), where + ": " + key + " is not used by kind " + kind + ": " + why);
        };
        if (s.kind == SecretKind::kKv) {
            if (keys.count("mount") == 0) s.mount = "secret";
            refuse("role", "a KV secret is named by path (read as <mount>/data/<path>)");
            refuse("rotation_margin",
                   "a KV secret has no lease; refresh_interval says how often it is re-read");
            if (s.path.empty()) {
                fail(at(set_lines_[i]), where + ": kind kv needs path, the secret's path under "
                                                "the mount (e.g. path = apps/db for "
                                                "secret/data/apps/db)");
            }
            if (s.username_field == s.password_field) {
                fail(at(keys.count("password_field") ? keys.at("password_field") : set_lines_[i]),
                     where + ": username_field and password_field are both '" + s.username_field +
                             "'");
            }
            return;
        }
        refuse("path", "it names a KV secret (kind = kv); a database role is named by role");
        refuse("username_field", "only a KV secret (kind = kv) has field names");
        refuse("password_field", "only a KV secret (kind = kv) has field names");
        if (s.kind == SecretKind::kStatic) {
            refuse("refresh_interval",
                   "a static role is read again right after Vault rotates it (from its ttl)");
            refuse("rotation_margin",
                   "Vault rotates a static role's password itself; it is read again right "
                   "after each rotation");
        } else {
            refuse("refresh_interval", "a dynamic role's lease is renewed and rotated instead");
        }
        if (s.role.empty()) {
            fail(at(set_lines_[i]),
                 where + ": role is not set" +
                         (s.kind == SecretKind::kStatic
                                  ? " (kind static reads <mount>/static-creds/<role>)"
                                  : ""));
        }
    }

    std::string path_;
    std::string dir_;
    const Getenv& getenv_;
    Config config_;
    Section section_ = Section::kNone;
    std::string section_name_;
    std::map<std::string, int> sections_;
    std::map<std::string, int> keys_;  // of the current section
    std::vector<int> set_lines_;
    std::vector<std::map<std::string, int>> set_key_lines_;  // per set: key -> line
    int vault_line_ = 0;
    int auth_line_ = 0;
    int mount_line_ = 0;
    std::string mount_key_;
    int role_line_ = 0;
    int jwt_line_ = 0;
    int retry_line_ = 0;
};

}  // namespace

const char* secret_kind_name(SecretKind kind) {
    switch (kind) {
        case SecretKind::kStatic:
            return "static";
        case SecretKind::kKv:
            return "kv";
        case SecretKind::kDynamic:
            break;
    }
    return "dynamic";
}

const char* auth_method_name(AuthMethod method) {
    switch (method) {
        case AuthMethod::kToken:
            return "token";
        case AuthMethod::kAppRole:
            return "approle";
        case AuthMethod::kKubernetes:
            return "kubernetes";
        case AuthMethod::kJwt:
            return "jwt";
        case AuthMethod::kCert:
            return "cert";
    }
    return "token";
}

std::optional<ListenAddress> parse_listen_address(std::string_view text) {
    ListenAddress a;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return std::nullopt;
        a.host = std::string(text.substr(1, close - 1));
        port = text.substr(close + 2);
        if (a.host.empty() ||
            a.host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos) {
            return std::nullopt;
        }
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos || colon == 0) return std::nullopt;
        a.host = std::string(text.substr(0, colon));
        port = text.substr(colon + 1);
        // A name or an IPv4 literal; an IPv6 literal needs brackets.
        if (a.host.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789.-") != std::string::npos) {
            return std::nullopt;
        }
    }
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string_view::npos) {
        return std::nullopt;
    }
    const unsigned long n = std::stoul(std::string(port));
    if (n > 65535) return std::nullopt;
    a.port = static_cast<std::uint16_t>(n);
    return a;
}

std::optional<Duration> parse_duration(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) {
        ++i;
    }
    const std::string number(text.substr(0, i));
    const std::string unit = trim(text.substr(i));
    if (number.empty() || number.find_first_of("0123456789") == std::string::npos ||
        std::count(number.begin(), number.end(), '.') > 1 || number.size() > 12) {
        return std::nullopt;
    }
    const double value = std::stod(number);
    double ms;
    if (unit.empty() || unit == "s") {
        ms = value * 1000;
    } else if (unit == "ms") {
        ms = value;
    } else if (unit == "m" || unit == "min") {
        ms = value * 60 * 1000;
    } else if (unit == "h") {
        ms = value * 3600 * 1000;
    } else {
        return std::nullopt;
    }
    if (ms > 1e12) return std::nullopt;
    return Duration(static_cast<Duration::rep>(ms));
}

std::optional<std::string> normalize_vault_address(std::string_view text) {
    std::string s(text);
    while (!s.empty() && s.back() == '/')
        s.pop_back();
    std::size_t rest;
    if (s.rfind("https://", 0) == 0) {
        rest = 8;
    } else if (s.rfind("http://", 0) == 0) {
        rest = 7;
    } else {
        return std::nullopt;
    }
    const std::string hostport = s.substr(rest);
    if (hostport.empty() || hostport.find_first_of("/?#@ \t") != std::string::npos) {
        return std::nullopt;
    }
    std::string host = hostport;
    std::string port;
    if (hostport[0] == '[') {  // IPv6 literal
        const auto close = hostport.find(']');
        if (close == std::string::npos || close == 1) return std::nullopt;
        host = hostport.substr(0, close + 1);
        const std::string after = hostport.substr(close + 1);
        if (!after.empty()) {
            if (after[0] != ':') return std::nullopt;
            port = after.substr(1);
            if (port.empty()) return std::nullopt;
        }
    } else if (const auto colon = hostport.find(':'); colon != std::string::npos) {
        host = hostport.substr(0, colon);
        port = hostport.substr(colon + 1);
        if (port.empty()) return std::nullopt;
    }
    if (host.empty()) return std::nullopt;
    if (!port.empty()) {
        if (!all_digits(port) || port.size() > 5) return std::nullopt;
        const int p = std::stoi(port);
        if (p < 1 || p > 65535) return std::nullopt;
    }
    return s;
}

ConfigResult parse_config(std::string_view text, const std::string& path, const Getenv& getenv) {
    ConfigResult result;
    try {
        result.config = Parser(path, getenv).run(text);
    } catch (const ConfigError& e) {
        result.error = e.message;
    }
    return result;
}

ConfigResult load_config(const std::string& path, const Getenv& getenv) {
    ConfigResult r;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        r.error = path + ": cannot read the configuration file: " + std::strerror(errno);
        return r;
    }
    std::string text;
    char buf[8192];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            r.error = path + ": cannot read the configuration file: " + std::strerror(errno);
            ::close(fd);
            return r;
        }
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
        if (text.size() > (1u << 20)) {
            ::close(fd);
            r.error = path + ": the configuration file is larger than 1 MiB";
            return r;
        }
    }
    ::close(fd);
    return parse_config(text, path, getenv);
}

}  // namespace pgbv::ctl
