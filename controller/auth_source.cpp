// Where the controller's Vault identity comes from.

#include "controller/auth_source.hpp"

#include <fcntl.h>
#include <jansson.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "controller/json.hpp"

namespace pgbv::ctl {
namespace {

constexpr std::size_t kMaxSecretFile = std::size_t{64} * 1024;

void set_secret(json_t* o, const char* key, const Secret& value) {
    json_object_set_new(o, key, json_stringn(value.data(), value.size()));
}

}  // namespace

AuthSource::AuthSource(const VaultSettings& settings, Secret env_token)
    : method_(settings.auth_method),
      token_file_(settings.token_from_env ? std::string() : settings.token_file),
      env_token_(settings.token_from_env ? std::move(env_token) : Secret()),
      role_id_file_(settings.role_id_file),
      secret_id_file_(settings.secret_id_file),
      secret_id_wrapped_(settings.secret_id_wrapped),
      mount_(settings.auth_mount.empty() ? std::string(auth_method_name(settings.auth_method))
                                         : settings.auth_mount),
      role_(settings.auth_role),
      jwt_file_(settings.jwt_file) {}

std::string AuthSource::login_description() const {
    std::string d = std::string(method_name()) + " login";
    if (!role_.empty()) d += " as role \"" + role_ + "\"";
    return d + " at auth/" + mount_;
}

std::string AuthSource::login_hint(long status) const {
    if (status == 0) return "check address, ca_file and the network path to Vault";
    if (status == 404 || status == 405) {
        return "no such auth method at auth/" + mount_ +
               ": check auth_mount in [vault] "
               "(and the namespace)";
    }
    if (status >= 500 || status == 429) return "Vault is not serving logins now; retrying";
    switch (method_) {
        case AuthMethod::kKubernetes:
            return "check auth_role in [vault] and the role in Vault (its bound service account "
                   "names and namespaces), and that jwt_file holds this pod's current "
                   "service-account token";
        case AuthMethod::kJwt:
            return "check auth_role in [vault] and the role in Vault (bound audiences, subject, "
                   "claims), and that jwt_file holds a current, unexpired JWT";
        case AuthMethod::kCert:
            return role_.empty() ? "check client_cert/client_key and the certificate roles "
                                   "at auth/" +
                                           mount_ + "/certs in Vault"
                                 : "check auth_role in [vault], client_cert/client_key and the "
                                   "certificate role in Vault";
        case AuthMethod::kAppRole:
            return "check role_id_file and secret_id_file (a secret ID may have expired or "
                   "run out of uses) and the AppRole in Vault";
        case AuthMethod::kToken:
            break;
    }
    return "check the Vault configuration";
}

std::string AuthSource::token_origin() const {
    return token_file_.empty() ? std::string("VAULT_TOKEN") : "token_file " + token_file_;
}

bool AuthSource::read_token(Secret* token, std::string* error) const {
    if (token_file_.empty()) {
        if (env_token_.empty()) {
            *error = "VAULT_TOKEN is empty";
            return false;
        }
        *token = env_token_.clone();
        return true;
    }
    if (read_secret_file(token_file_, token, error)) return true;
    *error +=
            "; token_file must hold the Vault token, readable by the controller's user "
            "(e.g. a Vault Agent sink)";
    return false;
}

bool AuthSource::read_approle(Secret* role_id, Secret* secret_id, std::string* error) const {
    return read_secret_file(role_id_file_, role_id, error) &&
           read_secret_file(secret_id_file_, secret_id, error);
}

bool AuthSource::read_jwt(Secret* jwt, std::string* error) const {
    std::string why;
    if (read_secret_file(jwt_file_, jwt, &why)) return true;
    *error = "jwt_file: " + why +
             (method_ == AuthMethod::kKubernetes
                      ? "; the pod's service-account token must be mounted there and readable "
                        "by the controller's user (automountServiceAccountToken, or a projected "
                        "volume; set jwt_file in [vault] to its path)"
                      : "; whatever issues the JWT must write it there, readable by the "
                        "controller's user (set jwt_file in [vault] to its path)");
    return false;
}

bool AuthSource::login_body(const Secret* secret_id, Secret* body, std::string* error) const {
    json::Ptr o = json::own(json_object());
    switch (method_) {
        case AuthMethod::kAppRole: {
            Secret role_id;
            Secret from_file;
            if (secret_id == nullptr) {
                if (!read_approle(&role_id, &from_file, error)) return false;
                secret_id = &from_file;
            } else if (!read_secret_file(role_id_file_, &role_id, error)) {
                return false;
            }
            set_secret(o.get(), "role_id", role_id);
            set_secret(o.get(), "secret_id", *secret_id);
            break;
        }
        case AuthMethod::kKubernetes:
        case AuthMethod::kJwt: {
            Secret jwt;
            if (!read_jwt(&jwt, error)) return false;
            json_object_set_new(o.get(), "role", json_string(role_.c_str()));
            set_secret(o.get(), "jwt", jwt);
            break;
        }
        case AuthMethod::kCert:
            if (!role_.empty()) json_object_set_new(o.get(), "name", json_string(role_.c_str()));
            break;
        case AuthMethod::kToken:
            *error = "the token method does not log in";
            return false;
    }
    *body = json::dump_secret(o.get());
    if (body->empty()) {
        *error = "out of memory building the login request";
        return false;
    }
    return true;
}

Secret AuthSource::take_env_token() {
    char* value = std::getenv("VAULT_TOKEN");
    if (value == nullptr) return Secret();
    Secret token(value);
    secure_wipe(value, std::strlen(value));
    ::unsetenv("VAULT_TOKEN");
    return token;
}

bool AuthSource::read_secret_file(const std::string& path, Secret* out, std::string* error) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *error = "cannot read " + path + ": " + std::strerror(errno);
        return false;
    }
    auto buf = std::make_unique<char[]>(kMaxSecretFile + 1);
    std::size_t size = 0;
    bool failed = false;
    int saved_errno = 0;
    while (size <= kMaxSecretFile) {
        const ssize_t n = ::read(fd, buf.get() + size, kMaxSecretFile + 1 - size);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            failed = true;
            saved_errno = errno;
            break;
        }
        if (n == 0) break;
        size += static_cast<std::size_t>(n);
    }
    ::close(fd);
    bool ok = false;
    if (failed) {
        *error = "cannot read " + path + ": " + std::strerror(saved_errno);
    } else if (size > kMaxSecretFile) {
        *error = path + " is larger than 64 KiB; it should hold one token or ID";
    } else {
        std::size_t end = size;
        while (end > 0 && std::strchr(" \t\r\n", buf[end - 1]) != nullptr)
            --end;
        std::size_t begin = 0;
        while (begin < end && std::strchr(" \t\r\n", buf[begin]) != nullptr)
            ++begin;
        if (begin == end) {
            *error = path + " is empty";
        } else {
            out->assign(std::string_view(buf.get() + begin, end - begin));
            ok = true;
        }
    }
    secure_wipe(buf.get(), kMaxSecretFile + 1);
    return ok;
}

}  // namespace pgbv::ctl
