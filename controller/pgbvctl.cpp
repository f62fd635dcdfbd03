// pgbvctl: asks a running pgbv-controller about its state over the admin socket.

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "controller/admin_protocol.hpp"
#include "controller/config.hpp"
#include "controller/unix_socket.hpp"

namespace pgbv::ctl {
namespace {

constexpr int kExitHealthy = 0;
constexpr int kExitUnhealthy = 1;
constexpr int kExitNoConnection = 2;
constexpr int kExitUsage = 64;

// Waits this long for the controller to answer.
constexpr int kTimeoutSeconds = 10;

void usage(FILE* out) {
    std::fprintf(out,
                 "usage: pgbvctl [-s SOCKET | -c CONFIG] status [--json] [--strict]\n"
                 "       pgbvctl [-s SOCKET | -c CONFIG] rotate SET\n"
                 "\n"
                 "  -s SOCKET  the controller's admin socket (default: $PGBV_ADMIN_SOCKET)\n"
                 "  -c CONFIG  read admin_socket from the controller's configuration file\n"
                 "  --json     print the controller's answer as JSON\n"
                 "  --strict   exit 1 when degraded, not only when failing\n"
                 "\n"
                 "Exit status of status: 0 healthy (ok or degraded: every set serves working\n"
                 "credentials), 1 unhealthy (some set has none, or degraded with --strict),\n"
                 "2 cannot reach the controller.  Other commands: 0 done, 1 refused, 2 no\n"
                 "connection.  64: bad usage.\n");
}

std::string span(std::int64_t seconds) {
    if (seconds < 0) return "-";
    char buf[32];
    if (seconds < 60) {
        std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(seconds));
    } else if (seconds < 3600) {
        std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(seconds / 60),
                      static_cast<long long>(seconds % 60));
    } else if (seconds < std::int64_t{2} * 86400) {
        std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(seconds / 3600),
                      static_cast<long long>(seconds % 3600 / 60));
    } else {
        std::snprintf(buf, sizeof buf, "%lldd%02lldh", static_cast<long long>(seconds / 86400),
                      static_cast<long long>(seconds % 86400 / 3600));
    }
    return buf;
}

std::string in(std::int64_t when, std::int64_t now) {
    if (when <= 0) return "-";
    if (when <= now) return "now";
    return "in " + span(when - now);
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::size_t> width;
    for (const auto& row : rows) {
        if (width.size() < row.size()) width.resize(row.size(), 0);
        for (std::size_t i = 0; i < row.size(); ++i)
            width[i] = std::max(width[i], row[i].size());
    }
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t i = 0; i < row.size(); ++i) {
            line += row[i];
            if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
        }
        std::printf("%s\n", line.c_str());
    }
}

void print_status(const Status& s) {
    std::printf("health:   %s\n", s.health.c_str());
    std::printf("vault:    %s (%s)%s%s\n", s.vault_state.c_str(), s.vault_address.c_str(),
                s.vault_error.empty() ? "" : ": ", s.vault_error.c_str());
    const VaultHealthStatus& h = s.vault_health;
    if (h.enabled || !h.state.empty()) {
        std::string line = h.state.empty() ? "unknown" : h.state;
        if (h.code != 0) line += " (sys/health " + std::to_string(h.code) + ")";
        if (!h.version.empty()) line += ", version " + h.version;
        if (!h.cluster_name.empty()) line += ", cluster " + h.cluster_name;
        if (h.state == "sealed") line += ": requests fail until Vault is unsealed";
        if (h.state == "standby" || h.state == "perf_standby") {
            line += ": requests are forwarded or redirected to the active node";
        }
        if (h.checked_at > 0) line += ", checked " + span(s.now - h.checked_at) + " ago";
        if (!h.error.empty()) line += "; last check failed: " + h.error;
        std::printf("node:     %s\n", line.c_str());
    }
    std::string token = s.token.state + ", " + s.token.method;
    if (!s.token.auth_path.empty()) token += " at " + s.token.auth_path;
    if (!s.token.role.empty()) token += " as role \"" + s.token.role + "\"";
    if (s.token.batch) token += ", batch (never renewed)";
    if (!s.token.expires) {
        token += ", no expiry";
    } else if (s.token.ttl >= 0) {
        token += ", ttl " + span(s.token.ttl);
    }
    if (s.token.renewable) token += s.token.max_ttl_reached ? ", max TTL reached" : ", renewable";
    token += ", " + std::to_string(s.token.logins) + " login" + (s.token.logins == 1 ? "" : "s");
    std::printf("token:    %s%s%s\n", token.c_str(), s.token.last_error.empty() ? "" : ": ",
                s.token.last_error.c_str());
    std::printf("plugins:  %u connected\n", s.plugin_clients);
    std::printf("uptime:   %s, %s\n\n", span(s.uptime).c_str(), s.version.c_str());
    // For a static role DEADLINE is Vault's next rotation and ROTATES the next read; a KV
    // secret has no deadline.
    std::vector<std::vector<std::string>> rows = {{"SET", "KIND", "STATE", "GEN", "USER",
                                                   "LEASE TTL", "DEADLINE", "ROTATES", "DRAINING",
                                                   "SOURCE", "LEASE"}};
    for (const SetStatus& set : s.sets) {
        std::string ttl = span(set.lease_ttl);
        if (set.max_ttl_reached) ttl += " (max)";
        rows.push_back({set.name, set.kind.empty() ? "-" : set.kind, set.state,
                        set.generation ? std::to_string(set.generation) : "-",
                        set.username.empty() ? "-" : set.username, ttl, in(set.deadline, s.now),
                        in(set.rotate_at, s.now), std::to_string(set.draining),
                        set.source.empty() ? "-" : set.source,
                        set.lease_id.empty() ? "-" : set.lease_id});
    }
    print_table(rows);
    for (const SetStatus& set : s.sets) {
        if (!set.last_error.empty())
            std::printf("\n%s: %s\n", set.name.c_str(), set.last_error.c_str());
    }
}

bool send_all(int fd, const std::string& data) {
    std::size_t off = 0;
    while (off < data.size()) {
        const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        off += static_cast<std::size_t>(n);
    }
    return true;
}

// Reads one line; false on error, timeout, EOF before '\n' or a line over the limit.
bool read_line(int fd, std::string* line, std::string* error) {
    char buf[65536];
    for (;;) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            *error = (errno == EAGAIN || errno == EWOULDBLOCK)
                             ? "no answer within " + std::to_string(kTimeoutSeconds) + "s"
                             : std::string(std::strerror(errno));
            return false;
        }
        if (n == 0) {
            *error = "the controller closed the connection without answering";
            return false;
        }
        line->append(buf, static_cast<std::size_t>(n));
        const auto nl = line->find('\n');
        if (nl != std::string::npos) {
            line->resize(nl);
            return true;
        }
        if (line->size() > admin::kMaxResponseLine) {
            *error = "answer too long";
            return false;
        }
    }
}

int run_main(int argc, char** argv) {
    std::string socket_path;
    std::string config_path;
    bool json = false;
    bool strict = false;
    std::vector<std::string> words;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if ((arg == "-s" || arg == "-c") && i + 1 < argc) {
            (arg == "-s" ? socket_path : config_path) = argv[++i];
        } else if (arg == "--json") {
            json = true;
        } else if (arg == "--strict") {
            strict = true;
        } else if (arg == "-h" || arg == "--help") {
            usage(stdout);
            return 0;
        } else if (!arg.empty() && arg[0] == '-') {
            std::fprintf(stderr, "pgbvctl: unknown option %s\n", arg.c_str());
            usage(stderr);
            return kExitUsage;
        } else {
            words.push_back(arg);
        }
    }
    if (words.empty() || (words[0] == "status" && words.size() != 1) ||
        (words[0] == "rotate" && words.size() != 2) ||
        (words[0] != "status" && words[0] != "rotate")) {
        usage(stderr);
        return kExitUsage;
    }
    if (socket_path.empty() && !config_path.empty()) {
        ConfigResult loaded =
                load_config(config_path, [](const char* n) { return std::getenv(n); });
        if (!loaded.config) {
            std::fprintf(stderr, "pgbvctl: %s\n", loaded.error.c_str());
            return kExitNoConnection;
        }
        socket_path = loaded.config->controller.admin_socket;
        if (socket_path.empty()) {
            std::fprintf(stderr, "pgbvctl: %s sets no admin_socket in [controller]\n",
                         config_path.c_str());
            return kExitNoConnection;
        }
    }
    if (socket_path.empty()) {
        if (const char* env = std::getenv("PGBV_ADMIN_SOCKET")) socket_path = env;
    }
    if (socket_path.empty()) {
        std::fprintf(stderr,
                     "pgbvctl: which controller? give -s SOCKET, -c CONFIG or set "
                     "PGBV_ADMIN_SOCKET\n");
        return kExitUsage;
    }

    std::string error;
    UniqueFd fd = connect_unix(socket_path, &error);
    if (!fd.valid()) {
        std::fprintf(stderr, "pgbvctl: %s (is pgbv-controller running?)\n", error.c_str());
        return kExitNoConnection;
    }
    const timeval tv = {kTimeoutSeconds, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

    admin::Request request;
    request.command = words[0];
    if (words[0] == "rotate") request.set = words[1];
    std::string line;
    if (!send_all(fd.get(), admin::encode_request(request)) ||
        !read_line(fd.get(), &line, &error)) {
        if (error.empty()) error = std::strerror(errno);
        std::fprintf(stderr, "pgbvctl: talking to %s: %s\n", socket_path.c_str(), error.c_str());
        return kExitNoConnection;
    }
    auto response = admin::parse_response(line, &error);
    if (!response) {
        std::fprintf(stderr, "pgbvctl: unreadable answer from %s: %s\n", socket_path.c_str(),
                     error.c_str());
        return kExitNoConnection;
    }
    if (!response->ok) {
        std::fprintf(stderr, "pgbvctl: the controller refused: %s\n", response->error.c_str());
        return kExitUnhealthy;
    }
    if (words[0] == "rotate") {
        std::printf("rotation of %s requested\n", words[1].c_str());
        return 0;
    }
    if (!response->status) {
        std::fprintf(stderr, "pgbvctl: the answer holds no status\n");
        return kExitNoConnection;
    }
    const Status& s = *response->status;
    if (json) {
        std::printf("%s\n", line.c_str());
    } else {
        print_status(s);
    }
    if (s.health == "ok") return kExitHealthy;
    if (s.health == "degraded" && !strict) return kExitHealthy;
    return kExitUnhealthy;
}

}  // namespace
}  // namespace pgbv::ctl

int main(int argc, char** argv) {
    return pgbv::ctl::run_main(argc, argv);
}
