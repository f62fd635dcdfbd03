// pgbvctl: looks at and steers a running pgbv-controller over its admin socket.

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
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

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;  // the command failed, or the controller is unhealthy
constexpr int kExitUsage = 2;
constexpr int kExitNoConnection = 3;

// Waits this long for the controller to answer.
constexpr int kTimeoutSeconds = 10;

struct CommandHelp {
    const char* name;
    const char* args;
    const char* summary;
    const char* details;
};

const CommandHelp kHelp[] = {
        {"status", "[--strict]", "overall health, Vault, the token and a line per set",
         "Prints the controller's health (ok, degraded, failing), whether Vault answers, the\n"
         "node's sys/health answer, the token's state and TTL, the connected plugins, and one\n"
         "line per credential set with the last error of each set that has one.\n"
         "\n"
         "Exit status: 0 ok, or degraded (every set still serves working credentials while\n"
         "Vault or the token is failing); 1 failing (some set has no working credentials),\n"
         "or degraded with --strict.\n"},
        {"sets", "", "one row per credential set: source, user, generation, lease, deadlines",
         "Columns: SET, KIND (dynamic, static, kv), STATE, SOURCE (what is read in Vault),\n"
         "USER, GEN (the generation PgBouncer is told to use), LEASE TTL (time left on the\n"
         "lease; \"(max)\" when renewals are capped), DEADLINE (when the credentials stop\n"
         "working for sure; static role: Vault's next rotation; \"-\" while unknown: a\n"
         "renewable lease's end is known once Vault caps a renewal at its max TTL), RENEWS\n"
         "(next lease renewal), ROTATES (next fetch of new credentials, rotation_margin\n"
         "before the deadline; static role and KV: next read),\n"
         "OLD GENS IN USE (older generations PgBouncer has not reported DRAINED yet: it\n"
         "still has servers logged in with them; the controller cannot see how many).\n"},
        {"leases", "", "every generation still tracked: current, in use, drained",
         "One row per generation of every set: STATE current (the one PgBouncer gets),\n"
         "in_use (replaced, not yet reported DRAINED), drained (reported drained; its lease\n"
         "is being revoked); LEASE TTL, DEADLINE, HOLDERS (plugin connections that got it\n"
         "and have not reported it drained) and the LEASE ID (static roles and KV secrets\n"
         "have none). Never a password.\n"},
        {"rotate", "SET",
         "fetch new credentials for SET now (an incident, a manual static-role rotation)",
         "Fetches new credentials for SET at once and pushes them to PgBouncer as a new\n"
         "generation; the old one drains (busy servers finish their transactions) and its\n"
         "lease is revoked once drained. A static role or KV secret is read again (a change\n"
         "makes a new generation); this does not ask Vault to rotate a static role.\n"},
        {"revoke-drained", "", "revoke now the leases of old generations reported drained",
         "Revokes at once the lease of every old generation that PgBouncer has reported\n"
         "drained (normally done by itself, with retries); generations still in use are\n"
         "left alone.\n"},
        {"reload", "", "re-read the configuration file and apply it (like SIGHUP)",
         "Re-reads the controller's configuration file: sets added start fetching, sets\n"
         "removed stop (their leases are revoked once drained), changed sets get a new\n"
         "generation, unchanged sets are untouched (PgBouncer sees nothing). Changes to\n"
         "[vault] or the sockets are reported as needing a restart and not applied. A file\n"
         "with an error is refused as a whole: the running configuration stays.\n"},
        {"log-level", "LEVEL", "set the controller's log level: error, warning, info, debug",
         "Sets the log level until the next restart or reload (log_level in the file is\n"
         "the level at start). Prints the new and the previous level.\n"},
};

const CommandHelp* find_help(const std::string& name) {
    for (const CommandHelp& h : kHelp) {
        if (name == h.name) return &h;
    }
    return nullptr;
}

void usage(FILE* out) {
    std::fprintf(out,
                 "usage: pgbvctl [--socket PATH | --config FILE] [--json] COMMAND [ARGS]\n"
                 "\n"
                 "Looks at and steers a running pgbv-controller over its admin socket.\n"
                 "\n"
                 "Commands:\n");
    for (const CommandHelp& h : kHelp) {
        const std::string head = std::string(h.name) + (*h.args ? " " : "") + h.args;
        std::fprintf(out, "  %-17s %s\n", head.c_str(), h.summary);
    }
    std::fprintf(out,
                 "\n"
                 "Options:\n"
                 "  -s, --socket PATH  the controller's admin socket (admin_socket in its\n"
                 "                     [controller] section); default: $PGBV_ADMIN_SOCKET\n"
                 "  -c, --config FILE  read admin_socket from the controller's configuration\n"
                 "  --json             print the controller's answer as one JSON line\n"
                 "                     (format: controller/admin_protocol.hpp)\n"
                 "  -h, --help         this help; `pgbvctl COMMAND --help` for one command\n"
                 "\n"
                 "Exit status: 0 done (status: healthy), 1 the command failed or the\n"
                 "controller is unhealthy, 2 bad usage, 3 cannot connect to the admin socket.\n");
}

void command_usage(FILE* out, const CommandHelp& h) {
    std::fprintf(out, "usage: pgbvctl [--socket PATH | --config FILE] [--json] %s%s%s\n\n%s.\n\n%s",
                 h.name, *h.args ? " " : "", h.args, h.summary, h.details);
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

std::string or_dash(const std::string& s) {
    return s.empty() ? "-" : s;
}

std::string lease_ttl(std::int64_t ttl, bool capped) {
    std::string out = span(ttl);
    if (capped && ttl >= 0) out += " (max)";
    return out;
}

// Old generations PgBouncer still uses (not reported DRAINED).
std::uint32_t old_in_use(const SetStatus& set) {
    if (set.generations.empty()) return set.draining;
    std::uint32_t n = 0;
    for (const GenerationStatus& g : set.generations)
        n += g.state == "in_use" ? 1 : 0;
    return n;
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

void print_set_errors(const std::vector<SetStatus>& sets) {
    bool first = true;
    for (const SetStatus& set : sets) {
        if (set.last_error.empty()) continue;
        std::printf("%s%s: %s\n", first ? "\n" : "", set.name.c_str(), set.last_error.c_str());
        first = false;
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
    std::vector<std::vector<std::string>> rows = {
            {"SET", "KIND", "STATE", "GEN", "USER", "LEASE TTL", "DEADLINE", "SOURCE"}};
    for (const SetStatus& set : s.sets) {
        rows.push_back({set.name, or_dash(set.kind), set.state,
                        set.generation ? std::to_string(set.generation) : "-",
                        or_dash(set.username), lease_ttl(set.lease_ttl, set.max_ttl_reached),
                        in(set.deadline, s.now), or_dash(set.source)});
    }
    print_table(rows);
    print_set_errors(s.sets);
}

void print_sets(const std::vector<SetStatus>& sets, std::int64_t now) {
    std::vector<std::vector<std::string>> rows = {{"SET", "KIND", "STATE", "SOURCE", "USER", "GEN",
                                                   "LEASE TTL", "DEADLINE", "RENEWS", "ROTATES",
                                                   "OLD GENS IN USE"}};
    for (const SetStatus& set : sets) {
        rows.push_back(
                {set.name, or_dash(set.kind), set.state, or_dash(set.source), or_dash(set.username),
                 set.generation ? std::to_string(set.generation) : "-",
                 lease_ttl(set.lease_ttl, set.max_ttl_reached), in(set.deadline, now),
                 in(set.renew_at, now), in(set.rotate_at, now), std::to_string(old_in_use(set))});
    }
    print_table(rows);
    print_set_errors(sets);
}

void print_leases(const std::vector<admin::Lease>& leases, std::int64_t now) {
    if (leases.empty()) {
        std::printf("no credentials yet\n");
        return;
    }
    std::vector<std::vector<std::string>> rows = {
            {"SET", "GEN", "STATE", "USER", "LEASE TTL", "DEADLINE", "HOLDERS", "LEASE ID"}};
    for (const admin::Lease& l : leases) {
        const GenerationStatus& g = l.generation;
        std::string state = g.state;
        if (g.revoke_failures > 0) {
            state += " (revoke failed " + std::to_string(g.revoke_failures) + "x)";
        }
        rows.push_back({l.set, std::to_string(g.number), state, or_dash(g.username),
                        span(g.lease_ttl), in(g.deadline, now), std::to_string(g.holders),
                        or_dash(g.lease_id)});
    }
    print_table(rows);
}

std::string joined(const std::vector<std::string>& items) {
    if (items.empty()) return "-";
    std::string out;
    for (const std::string& item : items) {
        if (!out.empty()) out += ", ";
        out += item;
    }
    return out;
}

void print_reload(const admin::ReloadReport& r) {
    std::printf("added:    %s\n", joined(r.added).c_str());
    std::printf("changed:  %s\n", joined(r.changed).c_str());
    std::printf("removed:  %s\n", joined(r.removed).c_str());
    if (!r.restart_needed.empty()) {
        std::printf("not applied, needs a restart: %s\n", joined(r.restart_needed).c_str());
    }
    if (!r.removed.empty()) {
        std::printf(
                "PgBouncer keeps the last credentials of a removed set until its own "
                "configuration drops the database that uses it.\n");
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
            *error = "answer longer than " + std::to_string(admin::kMaxResponseLine) + " bytes";
            return false;
        }
    }
}

struct Args {
    std::string socket_path;
    std::string config_path;
    bool json = false;
    bool strict = false;
    bool help = false;
    std::vector<std::string> words;
};

// Returns an exit code if the arguments are wrong (after saying why), or -1.
int parse_args(int argc, char** argv, Args* a) {
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const bool takes_value =
                arg == "-s" || arg == "--socket" || arg == "-c" || arg == "--config";
        if (takes_value) {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "pgbvctl: %s needs a value\n", arg.c_str());
                return kExitUsage;
            }
            (arg == "-s" || arg == "--socket" ? a->socket_path : a->config_path) = argv[++i];
        } else if (arg.rfind("--socket=", 0) == 0) {
            a->socket_path = arg.substr(9);
        } else if (arg.rfind("--config=", 0) == 0) {
            a->config_path = arg.substr(9);
        } else if (arg == "--json") {
            a->json = true;
        } else if (arg == "--strict") {
            a->strict = true;
        } else if (arg == "-h" || arg == "--help" || arg == "help") {
            a->help = true;
        } else if (arg.size() > 1 && arg[0] == '-') {
            std::fprintf(stderr, "pgbvctl: unknown option %s (see pgbvctl --help)\n", arg.c_str());
            return kExitUsage;
        } else {
            a->words.push_back(arg);
        }
    }
    return -1;
}

int run_main(int argc, char** argv) {
    Args a;
    if (const int bad = parse_args(argc, argv, &a); bad >= 0) return bad;
    const CommandHelp* help = a.words.empty() ? nullptr : find_help(a.words[0]);
    if (a.help) {
        if (help != nullptr) {
            command_usage(stdout, *help);
        } else {
            usage(stdout);
        }
        return kExitOk;
    }
    if (a.words.empty()) {
        std::fprintf(stderr, "pgbvctl: which command? (one of %s)\n\n",
                     admin::command_list().c_str());
        usage(stderr);
        return kExitUsage;
    }
    if (help == nullptr) {
        std::fprintf(stderr, "pgbvctl: unknown command '%s'; commands: %s (see pgbvctl --help)\n",
                     a.words[0].c_str(), admin::command_list().c_str());
        return kExitUsage;
    }
    const std::string& command = a.words[0];
    const std::size_t want = *help->args == '\0' || help->args[0] == '[' ? 1 : 2;
    if (a.words.size() != want) {
        std::fprintf(stderr, "pgbvctl: %s takes %s\n\n", command.c_str(),
                     want == 1 ? "no argument" : help->args);
        command_usage(stderr, *help);
        return kExitUsage;
    }
    if (a.strict && command != "status") {
        std::fprintf(stderr, "pgbvctl: --strict goes with status only\n");
        return kExitUsage;
    }
    admin::Request request;
    request.command = command;
    if (command == "rotate") request.set = a.words[1];
    if (command == "log-level") request.level = a.words[1];
    if (const std::string wrong = admin::check_request(request); !wrong.empty()) {
        std::fprintf(stderr, "pgbvctl: %s\n", wrong.c_str());
        return kExitUsage;
    }

    std::string where = "--socket";
    if (a.socket_path.empty() && !a.config_path.empty()) {
        ConfigResult loaded =
                load_config(a.config_path, [](const char* n) { return std::getenv(n); });
        if (!loaded.config) {
            std::fprintf(stderr,
                         "pgbvctl: cannot read the admin socket's path from %s: %s; fix the "
                         "file or give --socket PATH\n",
                         a.config_path.c_str(), loaded.error.c_str());
            return kExitUsage;
        }
        a.socket_path = loaded.config->controller.admin_socket;
        where = a.config_path;
        if (a.socket_path.empty()) {
            std::fprintf(stderr,
                         "pgbvctl: %s sets no admin_socket in [controller], so that "
                         "controller has no admin socket; add one and restart it\n",
                         a.config_path.c_str());
            return kExitNoConnection;
        }
    }
    if (a.socket_path.empty()) {
        if (const char* env = std::getenv("PGBV_ADMIN_SOCKET"); env && *env) {
            a.socket_path = env;
            where = "PGBV_ADMIN_SOCKET";
        }
    }
    if (a.socket_path.empty()) {
        std::fprintf(stderr,
                     "pgbvctl: which controller? give --socket PATH (its admin_socket), "
                     "--config FILE (its configuration) or set PGBV_ADMIN_SOCKET\n");
        return kExitUsage;
    }

    std::string error;
    UniqueFd fd = connect_unix(a.socket_path, &error);
    if (!fd.valid()) {
        const int e = errno;
        std::string hint = "is pgbv-controller running with admin_socket = " + a.socket_path +
                           " (from " + where + ")?";
        if (e == EACCES || e == EPERM || error.find(std::strerror(EACCES)) != std::string::npos) {
            hint = "run pgbvctl as the controller's user or root (admin_socket_mode "
                   "keeps others out)";
        }
        std::fprintf(stderr, "pgbvctl: %s; %s\n", error.c_str(), hint.c_str());
        return kExitNoConnection;
    }
    const timeval tv = {kTimeoutSeconds, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

    std::string line;
    // A controller that refuses us (peer uid, too many connections) says why at once and
    // hangs up, maybe before the request is sent: read its answer even if sending failed.
    const bool sent = send_all(fd.get(), admin::encode_request(request));
    const int send_errno = errno;
    if (!read_line(fd.get(), &line, &error)) {
        if (!sent) error = std::strerror(send_errno);
        std::fprintf(stderr,
                     "pgbvctl: %s: no answer from the controller at %s: %s; check its log\n",
                     command.c_str(), a.socket_path.c_str(), error.c_str());
        return kExitNoConnection;
    }
    auto response = admin::parse_response(line, &error);
    if (!response) {
        std::fprintf(stderr,
                     "pgbvctl: %s: unreadable answer from %s: %s; are pgbvctl and "
                     "pgbv-controller the same version?\n",
                     command.c_str(), a.socket_path.c_str(), error.c_str());
        return kExitFailed;
    }
    if (a.json) std::printf("%s\n", line.c_str());
    if (!response->ok) {
        std::fprintf(stderr, "pgbvctl: %s failed: %s\n", command.c_str(), response->error.c_str());
        // The peer check refuses before any command runs: the socket could not be used.
        return response->error.rfind("permission denied", 0) == 0 ? kExitNoConnection : kExitFailed;
    }

    if (command == "status") {
        if (!response->status) {
            std::fprintf(stderr, "pgbvctl: status: the answer holds no status\n");
            return kExitFailed;
        }
        const Status& s = *response->status;
        if (!a.json) print_status(s);
        if (s.health == "ok") return kExitOk;
        if (s.health == "degraded" && !a.strict) return kExitOk;
        return kExitFailed;
    }
    if (a.json) return kExitOk;
    if (command == "sets") {
        print_sets(response->sets.value_or(std::vector<SetStatus>{}), response->now);
    } else if (command == "leases") {
        print_leases(response->leases.value_or(std::vector<admin::Lease>{}), response->now);
    } else if (command == "reload") {
        print_reload(response->reload.value_or(admin::ReloadReport{}));
    } else if (command == "log-level") {
        std::printf("log level: %s (was %s)\n", response->level.c_str(),
                    response->previous.c_str());
    } else {
        std::printf("%s\n", response->message.empty() ? "done" : response->message.c_str());
    }
    return kExitOk;
}

}  // namespace
}  // namespace pgbv::ctl

int main(int argc, char** argv) {
    return pgbv::ctl::run_main(argc, argv);
}
