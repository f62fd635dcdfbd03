// pgbv-controller: logs in to Vault, keeps database credentials fresh and serves them to
// the credential plugins inside PgBouncer.

#include <event2/event.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <random>
#include <string>

#include "controller/admin_protocol.hpp"
#include "controller/admin_server.hpp"
#include "controller/auth_source.hpp"
#include "controller/config.hpp"
#include "controller/controller.hpp"
#include "controller/curl_transport.hpp"
#include "controller/event_clock.hpp"
#include "controller/event_handles.hpp"
#include "controller/http_endpoint.hpp"
#include "controller/log.hpp"
#include "controller/metrics.hpp"
#include "controller/plugin_server.hpp"
#include "controller/unix_socket.hpp"
#include "controller/vault_client.hpp"
#include "controller/vault_health.hpp"
#include "controller/version.hpp"
#include "controller/wiping_memory.hpp"

namespace pgbv::ctl {
namespace {

void usage(FILE* out) {
    std::fprintf(out,
                 "usage: pgbv-controller [--check] [-v] CONFIG\n"
                 "\n"
                 "Keeps database credentials from HashiCorp Vault fresh and serves them to\n"
                 "PgBouncer's credential plugin.  CONFIG is described in controller/CONFIG.md.\n"
                 "\n"
                 "  --check    check CONFIG and exit (0 if valid)\n"
                 "  -v         log at debug level, whatever log_level says\n"
                 "  --version  print the version and exit\n"
                 "\n"
                 "Signals: SIGHUP re-reads CONFIG (like pgbvctl reload); SIGTERM/SIGINT stop\n"
                 "(with revoke_on_shutdown, after revoking every lease; a second signal\n"
                 "stops at once).\n"
                 "\n"
                 "Environment: VAULT_ADDR, VAULT_TOKEN, VAULT_CACERT, VAULT_CAPATH,\n"
                 "VAULT_NAMESPACE, VAULT_CLIENT_CERT, VAULT_CLIENT_KEY, VAULT_TLS_SERVER_NAME\n"
                 "and VAULT_SKIP_VERIFY override the file.\n");
}

// Keeps secrets out of core dumps and out of other processes' reach (ptrace, /proc/mem).
void harden_process() {
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    struct rlimit none = {0, 0};
    ::setrlimit(RLIMIT_CORE, &none);
}

// Re-reads the configuration file and applies it (SIGHUP, pgbvctl reload).  A file that
// cannot be read or is invalid changes nothing: the error is logged and returned.
ReloadResult reload_config(Controller& controller, const std::string& path, const Getenv& getenv,
                           bool verbose) {
    ReloadResult result = reload_from_file(controller, path, getenv);
    if (result.error.empty()) {
        if (!verbose) log::set_level(controller.config().controller.log_level);
        log::set_format(controller.config().controller.log_format);
    }
    return result;
}

struct Daemon {
    event_base* base = nullptr;
    PluginServer* plugins = nullptr;
    Controller* controller = nullptr;
    std::function<ReloadResult()> reload;
    bool stopping = false;
};

// Tells the plugins and leaves the loop once their ERROR frames had time to go out.
void stop_now(Daemon& d) {
    if (d.plugins != nullptr) d.plugins->shutdown();
    const timeval grace = {0, 500000};
    event_base_loopexit(d.base, &grace);
}

void on_stop_signal(evutil_socket_t signo, short, void* arg) {
    auto* d = static_cast<Daemon*>(arg);
    if (d->stopping) {
        log::info("second %s: exiting now", strsignal(static_cast<int>(signo)));
        event_base_loopbreak(d->base);
        return;
    }
    d->stopping = true;
    const ControllerSettings& settings = d->controller->config().controller;
    if (!settings.revoke_on_shutdown) {
        log::info("%s received: shutting down (leases are left to PgBouncer, not revoked)",
                  strsignal(static_cast<int>(signo)));
        stop_now(*d);
        return;
    }
    log::info(
            "%s received: shutting down; revoke_on_shutdown is on (a second signal exits at "
            "once, without revoking)",
            strsignal(static_cast<int>(signo)));
    d->controller->shutdown_revoking(settings.shutdown_timeout, [d] { stop_now(*d); });
}

void on_hup(evutil_socket_t, short, void* arg) {
    auto* d = static_cast<Daemon*>(arg);
    if (d->stopping) {
        log::info("SIGHUP ignored: shutting down");
        return;
    }
    log::info("SIGHUP received: reloading the configuration");
    d->reload();
}

int run(const Config& config, Secret env_token, const Getenv& getenv, bool verbose) {
    UniqueEventBase base(event_base_new());
    if (!base) {
        log::error("cannot create the event loop");
        return 1;
    }
    EventClock clock(base.get());
    Jitter jitter(std::random_device{}());
    CurlTransport::Options http_options;
    http_options.ca_file = config.vault.ca_file;
    http_options.ca_path = config.vault.ca_path;
    http_options.client_cert = config.vault.client_cert;
    http_options.client_key = config.vault.client_key;
    http_options.tls_server_name = config.vault.tls_server_name;
    http_options.skip_verify = config.vault.tls_skip_verify;
    if (config.vault.tls_skip_verify) {
        log::warning(
                "tls_skip_verify is on: Vault's TLS certificate is NOT verified, so anyone on "
                "the network path can impersonate Vault and read the token and every "
                "credential; set ca_file (or ca_path) and turn tls_skip_verify off");
    }
    http_options.user_agent = std::string("pgbv-controller/") + kVersion;
    CurlTransport transport(base.get(), http_options);
    Metrics metrics;  // counted by the Vault client, the sets, the keeper, the plugin socket
    VaultClient vault(transport, clock,
                      VaultClient::Options{config.vault.address, config.vault.name_space,
                                           config.vault.request_timeout});
    vault.set_metrics(metrics);
    AuthSource auth(config.vault, std::move(env_token));
    Controller controller(config, clock, jitter, vault, auth);
    // For SIGHUP and the admin socket's reload.
    const std::function<ReloadResult()> reload = [&controller, &config, &getenv, verbose] {
        return reload_config(controller, config.path, getenv, verbose);
    };
    VaultHealth vault_health(clock, vault, config.vault.health_interval);

    std::string error;
    auto plugin_listener = UnixListener::open(config.controller.plugin_socket,
                                              config.controller.plugin_socket_mode,
                                              config.controller.plugin_socket_group, &error);
    if (!plugin_listener) {
        log::error("plugin socket: %s", error.c_str());
        return 1;
    }
    PluginServer::Options plugin_options;
    plugin_options.allowed_uids = config.controller.allowed_uids;
    plugin_options.max_clients = config.controller.max_plugin_clients;
    plugin_options.metrics = &metrics;
    PluginServer plugins(base.get(), std::move(*plugin_listener), controller, plugin_options);
    controller.set_publish(
            [&plugins](const pgbv::wire::Credentials& c) { return plugins.broadcast(c); });
    controller.set_client_count([&plugins] { return plugins.client_count(); });

    std::optional<AdminServer> admin;
    if (!config.controller.admin_socket.empty()) {
        auto admin_listener =
                UnixListener::open(config.controller.admin_socket,
                                   config.controller.admin_socket_mode, std::nullopt, &error);
        if (!admin_listener) {
            log::error("admin socket: %s", error.c_str());
            return 1;
        }
        std::vector<uid_t> admins = {::geteuid(), 0};
        // What each admin command does (admin_server.hpp); log-level is AdminServer's own.
        AdminServer::Actions actions;
        actions.status = [&controller, &vault_health] {
            Status status = controller.status();
            status.vault_health = vault_health.status();
            return status;
        };
        actions.rotate = [&controller](const std::string& set) { return controller.rotate(set); };
        actions.revoke_drained = [&controller](std::string* text) {
            std::string err;
            *text = controller.revoke_drained(&err);
            if (err.empty()) return true;
            *text = err;
            return false;
        };
        actions.reload = [&reload](std::string* err) -> std::optional<admin::ReloadReport> {
            ReloadResult r = reload();
            if (!r.error.empty()) {
                *err = r.error;
                return std::nullopt;
            }
            return admin::ReloadReport{r.added, r.changed, r.removed, r.restart_needed};
        };
        admin.emplace(base.get(), std::move(*admin_listener), std::move(actions), admins);
    }

    // /metrics, /healthz, /readyz.
    std::unique_ptr<HttpEndpoint> http;
    if (const auto& listen = config.controller.http_listen) {
        HttpEndpoint::Options endpoint_options;
        endpoint_options.host = listen->host;
        endpoint_options.port = listen->port;
        http = HttpEndpoint::open(
                base.get(), clock, metrics,
                [&controller, &vault_health] {
                    Status s = controller.status();
                    s.vault_health = vault_health.status();
                    return s;
                },
                endpoint_options, &error);
        if (!http) {
            log::error("http_listen: %s", error.c_str());
            return 1;
        }
        log::info("http endpoint on http://%s (/metrics, /healthz, /readyz)",
                  http->bound_address().c_str());
    } else {
        log::info("http endpoint off (http_listen = off)");
    }

    Daemon daemon{base.get(), &plugins, &controller, reload};
    UniqueEvent sigterm(evsignal_new(base.get(), SIGTERM, &on_stop_signal, &daemon));
    UniqueEvent sigint(evsignal_new(base.get(), SIGINT, &on_stop_signal, &daemon));
    UniqueEvent sighup(evsignal_new(base.get(), SIGHUP, &on_hup, &daemon));
    if (!sigterm || !sigint || !sighup) {
        log::error("cannot install the signal handlers");
        return 1;
    }
    event_add(sigterm.get(), nullptr);
    event_add(sigint.get(), nullptr);
    event_add(sighup.get(), nullptr);

    log::info("plugin socket %s (mode %04o), admin socket %s", plugins.path().c_str(),
              static_cast<unsigned>(config.controller.plugin_socket_mode),
              admin ? admin->path().c_str() : "(none)");
    if (auth.method() == AuthMethod::kToken) {
        log::info("vault: auth_method token, from %s", auth.token_origin().c_str());
    } else {
        log::info("vault: auth_method %s: %s%s", auth.method_name(),
                  auth.login_description().c_str(),
                  config.vault.client_cert.empty() ? "" : " (with a TLS client certificate)");
    }
    controller.start();
    vault_health.start();
    event_base_dispatch(base.get());
    log::info("stopped");
    return 0;
}

int run_main(int argc, char** argv) {
    harden_process();
    std::string error;
    if (!install_wiping_allocators(&error)) {
        std::fprintf(stderr, "pgbv-controller: %s\n", error.c_str());
        return 1;
    }
    bool check = false;
    bool verbose = false;
    const char* path = nullptr;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--check") {
            check = true;
        } else if (arg == "-v" || arg == "--verbose") {
            verbose = true;
        } else if (arg == "--version") {
            std::printf("%s\n", kSoftware);
            return 0;
        } else if (arg == "-h" || arg == "--help") {
            usage(stdout);
            return 0;
        } else if (!arg.empty() && arg[0] == '-') {
            std::fprintf(stderr, "pgbv-controller: unknown option %s\n", arg.c_str());
            usage(stderr);
            return 2;
        } else if (path == nullptr) {
            path = argv[i];
        } else {
            std::fprintf(stderr, "pgbv-controller: only one configuration file, please\n");
            return 2;
        }
    }
    if (path == nullptr) {
        usage(stderr);
        return 2;
    }
    // Out of the environment before anything else runs: no child and no /proc reader
    // may see it.
    Secret env_token = AuthSource::take_env_token();
    const bool have_env_token = !env_token.empty();
    const Getenv getenv = [have_env_token](const char* name) -> const char* {
        if (std::strcmp(name, "VAULT_TOKEN") == 0) return have_env_token ? "(set)" : nullptr;
        return std::getenv(name);
    };
    ConfigResult loaded = load_config(path, getenv);
    if (!loaded.config) {
        std::fprintf(stderr, "pgbv-controller: %s\n", loaded.error.c_str());
        return 1;
    }
    const Config& config = *loaded.config;
    if (check) {
        std::printf("%s: configuration is valid (%zu credential set%s)\n", path, config.sets.size(),
                    config.sets.size() == 1 ? "" : "s");
        return 0;
    }
    log::set_level(verbose ? log::Level::kDebug : config.controller.log_level);
    log::set_format(config.controller.log_format);
    ::signal(SIGPIPE, SIG_IGN);
    try {
        return run(config, std::move(env_token), getenv, verbose);
    } catch (const std::exception& e) {
        log::error("fatal: %s", e.what());
        return 1;
    }
}

}  // namespace
}  // namespace pgbv::ctl

int main(int argc, char** argv) {
    return pgbv::ctl::run_main(argc, argv);
}
