// The controller's core: the token keeper and the credential sets, wired together.

#include "controller/controller.hpp"

#include <algorithm>

#include "controller/lease_policy.hpp"
#include "controller/log.hpp"
#include "controller/version.hpp"

namespace pgbv::ctl {
namespace {

Duration largest_margin(const Config& config) {
    // Only leases die with the token; static roles and KV secrets do not need the margin.
    Duration m{0};
    for (const auto& s : config.sets) {
        if (s.kind == SecretKind::kDynamic) m = std::max(m, s.rotation_margin);
    }
    return m;
}

}  // namespace

Controller::Controller(Config config, Clock& clock, Jitter& jitter, VaultClient& vault,
                       const AuthSource& auth)
    : config_(std::move(config)), clock_(clock), jitter_(jitter), vault_(vault) {
    started_at_ = clock_.now();
    // config_.vault is never reassigned (a reload keeps it): the keeper and the sets may
    // refer to it.
    keeper_ = std::make_unique<TokenKeeper>(clock, jitter, vault, auth, config_.vault,
                                            policy::relogin_lead(largest_margin(config_)));
    for (const SetSettings& s : config_.sets)
        sets_.push_back(make_set(s));
    keeper_->set_on_update([this] {
        for (auto& set : sets_)
            set->on_token_update();
        for (auto& set : removed_)
            set->on_token_update();
    });
    reap_timer_ = clock_.new_timer([this] { reap(); });
    shutdown_timer_ = clock_.new_timer([this] {
        if (shutdown_ == Shutdown::kWaiting) {
            log::info(
                    "shutdown: shutdown_timeout (%llds) has passed with plugins still "
                    "holding credentials; revoking anyway",
                    static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(
                                                   config_.controller.shutdown_timeout)
                                                   .count()));
            revoke_everything("shutdown_timeout has passed");
        } else if (shutdown_ == Shutdown::kRevoking) {
            log::warning(
                    "shutdown: some revocations did not finish in time; exiting (Vault "
                    "revokes those leases at their end)");
            shutdown_ = Shutdown::kDone;
            if (shutdown_done_) shutdown_done_();
        }
    });
}

Controller::~Controller() {
    // Sets refer to the keeper: destroy them first.
    sets_.clear();
    removed_.clear();
}

std::unique_ptr<CredentialSet> Controller::make_set(const SetSettings& s) {
    return std::make_unique<CredentialSet>(
            CredentialSet::Deps{clock_, jitter_, vault_, *keeper_, config_.vault}, s,
            [this](const wire::Credentials& c) {
                return publish_ ? publish_(c) : std::vector<ClientId>{};
            });
}

void Controller::start() {
    log::info("%s starting: Vault at %s, %s login, %zu credential set%s", kSoftware,
              config_.vault.address.c_str(), auth_method_name(config_.vault.auth_method),
              sets_.size(), sets_.size() == 1 ? "" : "s");
    keeper_->start();
    for (auto& set : sets_)
        set->start();
    started_ = true;
}

CredentialSet* Controller::find(std::string_view name) {
    for (auto& set : sets_) {
        if (set->name() == name) return set.get();
    }
    return nullptr;
}

std::vector<wire::Credentials> Controller::snapshot(ClientId client) {
    std::vector<wire::Credentials> out;
    for (auto& set : sets_) {
        if (auto c = set->snapshot_for(client)) out.push_back(std::move(*c));
    }
    return out;
}

void Controller::drained(ClientId client, const wire::Drained& m) {
    CredentialSet* target = find(m.set);
    // A set removed by a reload (perhaps added again since) still hears about its
    // generations.
    if (target == nullptr || !target->holds(m.generation)) {
        for (auto& set : removed_) {
            if (set->name() == m.set && set->holds(m.generation)) target = set.get();
        }
    }
    if (target != nullptr) {
        target->on_drained(client, m.generation, m.username);
    } else {
        log::debug("plugin: DRAINED for unknown set %s ignored", m.set.c_str());
    }
    check_shutdown_wait();
}

void Controller::login_failed(ClientId client, const wire::LoginFailed& m) {
    if (CredentialSet* set = find(m.set)) {
        set->on_login_failed(client, m.generation, m.username, m.sqlstate);
    } else {
        log::debug("plugin: LOGIN_FAILED for unknown set %s ignored", m.set.c_str());
    }
}

void Controller::client_closed(ClientId client) {
    for (auto& set : sets_)
        set->on_client_closed(client);
    for (auto& set : removed_)
        set->on_client_closed(client);
    check_shutdown_wait();
}

std::string Controller::rotate(std::string_view name) {
    CredentialSet* set = find(name);
    if (set == nullptr) return "no credential set named '" + std::string(name) + "'";
    set->rotate_now();
    return {};
}

namespace {

using Changes = std::vector<std::string>;

template <class T>
void note(Changes& out, const char* key, const T& was, const T& now) {
    if (!(was == now)) out.emplace_back(key);
}

// The [vault] keys whose value differs: all of them need a restart (the token keeper, the
// HTTP transport and the auth source are built from them at start).
Changes vault_changes(const VaultSettings& a, const VaultSettings& b) {
    Changes c;
    note(c, "[vault] address", a.address, b.address);
    note(c, "[vault] namespace", a.name_space, b.name_space);
    note(c, "[vault] ca_file", a.ca_file, b.ca_file);
    note(c, "[vault] ca_path", a.ca_path, b.ca_path);
    note(c, "[vault] auth_method", a.auth_method, b.auth_method);
    note(c, "[vault] token_file", a.token_file, b.token_file);
    note(c, "VAULT_TOKEN", a.token_from_env, b.token_from_env);
    note(c, "[vault] role_id_file", a.role_id_file, b.role_id_file);
    note(c, "[vault] secret_id_file", a.secret_id_file, b.secret_id_file);
    note(c, "[vault] secret_id_wrapped", a.secret_id_wrapped, b.secret_id_wrapped);
    note(c, "[vault] auth_mount", a.auth_mount, b.auth_mount);
    note(c, "[vault] auth_role", a.auth_role, b.auth_role);
    note(c, "[vault] jwt_file", a.jwt_file, b.jwt_file);
    note(c, "[vault] client_cert", a.client_cert, b.client_cert);
    note(c, "[vault] client_key", a.client_key, b.client_key);
    note(c, "[vault] tls_server_name", a.tls_server_name, b.tls_server_name);
    note(c, "[vault] tls_skip_verify", a.tls_skip_verify, b.tls_skip_verify);
    note(c, "[vault] health_interval", a.health_interval, b.health_interval);
    note(c, "[vault] request_timeout", a.request_timeout, b.request_timeout);
    note(c, "[vault] retry_min", a.retry_min, b.retry_min);
    note(c, "[vault] retry_max", a.retry_max, b.retry_max);
    return c;
}

// The [controller] keys that need a restart (the sockets are open and their owners built);
// log_level, log_format, revoke_on_shutdown and shutdown_timeout apply at once.
Changes controller_restart_changes(const ControllerSettings& a, const ControllerSettings& b) {
    Changes c;
    note(c, "[controller] plugin_socket", a.plugin_socket, b.plugin_socket);
    note(c, "[controller] plugin_socket_mode", a.plugin_socket_mode, b.plugin_socket_mode);
    note(c, "[controller] plugin_socket_group", a.plugin_socket_group, b.plugin_socket_group);
    note(c, "[controller] allowed_uids", a.allowed_uids, b.allowed_uids);
    note(c, "[controller] max_plugin_clients", a.max_plugin_clients, b.max_plugin_clients);
    note(c, "[controller] admin_socket", a.admin_socket, b.admin_socket);
    note(c, "[controller] admin_socket_mode", a.admin_socket_mode, b.admin_socket_mode);
    note(c, "[controller] http_listen", a.http_listen, b.http_listen);
    return c;
}

std::string join(const Changes& items) {
    std::string out;
    for (const auto& i : items)
        out += (out.empty() ? "" : ", ") + i;
    return out;
}

}  // namespace

ReloadResult Controller::reload(Config next) {
    ReloadResult result;
    if (shutdown_ != Shutdown::kNo) {
        result.error = "the controller is shutting down; nothing reloaded";
        return result;
    }
    result.restart_needed = vault_changes(config_.vault, next.vault);
    for (auto& key : controller_restart_changes(config_.controller, next.controller))
        result.restart_needed.push_back(std::move(key));

    std::vector<std::unique_ptr<CredentialSet>> kept;
    std::size_t unchanged = 0;
    for (const SetSettings& s : next.sets) {
        auto it = std::find_if(sets_.begin(), sets_.end(),
                               [&](const auto& set) { return set && set->name() == s.name; });
        if (it != sets_.end()) {
            if (!((*it)->settings() == s)) {
                result.changed.push_back(s.name);
                (*it)->reconfigure(s);
            } else {
                ++unchanged;
            }
            kept.push_back(std::move(*it));
            continue;
        }
        auto set = make_set(s);
        // Numbers keep rising for a name that was removed and comes back.
        for (const auto& old : removed_) {
            if (old->name() == s.name) set->continue_numbering(old->last_generation());
        }
        auto last = removed_numbers_.find(s.name);
        if (last != removed_numbers_.end()) set->continue_numbering(last->second);
        result.added.push_back(s.name);
        kept.push_back(std::move(set));
    }
    for (auto& set : sets_) {
        if (!set) continue;
        result.removed.push_back(set->name());
        removed_numbers_[set->name()] = set->last_generation();
        CredentialSet* raw = set.get();
        removed_.push_back(std::move(set));
        raw->remove([this] { reap_timer_->arm_at(clock_.now()); });
    }
    sets_ = std::move(kept);

    // [vault] stays as it was started (the token keeper and the sets refer to it).
    config_.sets = std::move(next.sets);
    config_.controller.log_level = next.controller.log_level;
    config_.controller.log_format = next.controller.log_format;
    config_.controller.revoke_on_shutdown = next.controller.revoke_on_shutdown;
    config_.controller.shutdown_timeout = next.controller.shutdown_timeout;
    keeper_->set_relogin_lead(policy::relogin_lead(largest_margin(config_)));
    if (started_) {
        for (auto& set : sets_) {
            for (const auto& name : result.added) {
                if (set->name() == name) set->start();
            }
        }
    }

    log::event(log::Level::kInfo, "reload", "",
               "reload: %zu set%s added%s%s, %zu changed%s%s, %zu removed%s%s, %zu unchanged",
               result.added.size(), result.added.size() == 1 ? "" : "s",
               result.added.empty() ? "" : " ", join(result.added).c_str(), result.changed.size(),
               result.changed.empty() ? "" : " ", join(result.changed).c_str(),
               result.removed.size(), result.removed.empty() ? "" : " ",
               join(result.removed).c_str(), unchanged);
    if (!result.removed.empty()) {
        log::info(
                "reload: PgBouncer keeps the last credentials of a removed set until its own "
                "configuration drops the database (credential=%s); remove it there too",
                join(result.removed).c_str());
    }
    if (!result.restart_needed.empty()) {
        log::warning(
                "reload: %s changed but needs a restart; not applied (still running with "
                "the values from start)",
                join(result.restart_needed).c_str());
    }
    return result;
}

ReloadResult reload_from_file(Controller& controller, const std::string& path,
                              const Getenv& getenv) {
    log::event(log::Level::kInfo, "reload", "", "reload: reading %s", path.c_str());
    ConfigResult loaded = load_config(path, getenv);
    if (!loaded.config) {
        ReloadResult result;
        result.error = loaded.error +
                       "; nothing changed (still running with the configuration loaded before)";
        log::error("reload: %s", result.error.c_str());
        return result;
    }
    return controller.reload(std::move(*loaded.config));
}

std::string Controller::revoke_drained(std::string* error) {
    std::vector<std::string> started;
    std::size_t in_use = 0;
    for (auto& set : sets_)
        in_use += set->revoke_drained_now(&started);
    for (auto& set : removed_)
        in_use += set->revoke_drained_now(&started);
    std::string summary;
    if (started.empty()) {
        summary = "no drained generation waits for its revocation";
    } else {
        summary = "revoking " + std::to_string(started.size()) + " drained generation" +
                  (started.size() == 1 ? "" : "s") + ": " + join(started);
    }
    if (in_use > 0) {
        summary += "; " + std::to_string(in_use) + " old generation" + (in_use == 1 ? "" : "s") +
                   " still in use (not yet DRAINED)";
    }
    if (!keeper_->current()) {
        const std::string why =
                "no usable Vault token (see pgbvctl status): drained generations are revoked "
                "once a login succeeds";
        if (error) *error = why;
        summary += "; " + why;
    }
    log::event(log::Level::kInfo, "revoke", "", "revoke-drained: %s", summary.c_str());
    return summary;
}

void Controller::shutdown_revoking(Duration timeout, std::function<void()> done) {
    if (shutdown_ != Shutdown::kNo) return;
    shutdown_ = Shutdown::kWaiting;
    shutdown_done_ = std::move(done);
    log::info(
            "shutdown: waiting up to %llds for PgBouncer to close its servers (every plugin "
            "disconnected or every generation drained), then revoking every lease",
            static_cast<long long>(
                    std::chrono::duration_cast<std::chrono::seconds>(timeout).count()));
    shutdown_timer_->arm_at(clock_.now() + timeout);
    check_shutdown_wait();
}

void Controller::check_shutdown_wait() {
    if (shutdown_ != Shutdown::kWaiting) return;
    if (client_count_ && client_count_() == 0) {
        revoke_everything("no plugin is connected");
        return;
    }
    for (const auto& set : sets_) {
        if (!set->released_by_plugins()) return;
    }
    for (const auto& set : removed_) {
        if (!set->released_by_plugins()) return;
    }
    revoke_everything("every plugin reported its generations drained");
}

void Controller::revoke_everything(const char* why) {
    shutdown_ = Shutdown::kRevoking;
    log::event(log::Level::kInfo, "revoke", "", "shutdown: %s; revoking every lease", why);
    // Revocations are bounded by request_timeout each (one set after another); no retries
    // at shutdown.
    const auto sets =
            static_cast<Duration::rep>(std::max<std::size_t>(1, sets_.size() + removed_.size()));
    shutdown_timer_->arm_at(clock_.now() + config_.vault.request_timeout * sets +
                            std::chrono::seconds(1));
    // One set at a time: Vault runs each lease's revocation statements on PostgreSQL, and
    // two running at once on the same database or group fail there with "tuple
    // concurrently updated", leaving the role behind.
    revoke_queue_.clear();
    for (auto& set : sets_)
        revoke_queue_.push_back(set.get());
    for (auto& set : removed_)
        revoke_queue_.push_back(set.get());
    std::reverse(revoke_queue_.begin(), revoke_queue_.end());
    revoke_next_set();
}

void Controller::revoke_next_set() {
    revoking_ = nullptr;
    while (!revoke_queue_.empty()) {
        CredentialSet* set = revoke_queue_.back();
        revoke_queue_.pop_back();
        set->revoke_all([this] { reap_timer_->arm_at(clock_.now()); });
        if (!set->finished()) {
            revoking_ = set;
            return;
        }
    }
    reap_timer_->arm_at(clock_.now());
}

void Controller::reap() {
    if (shutdown_ == Shutdown::kNo) {
        removed_.erase(std::remove_if(removed_.begin(), removed_.end(),
                                      [](const auto& set) {
                                          if (!set->finished()) return false;
                                          log::debug("set %s (removed): nothing left; forgotten",
                                                     set->name().c_str());
                                          return true;
                                      }),
                       removed_.end());
        return;
    }
    if (shutdown_ != Shutdown::kRevoking) return;
    if (revoking_ != nullptr && revoking_->finished()) revoke_next_set();
    if (revoking_ != nullptr || !revoke_queue_.empty()) return;
    for (const auto& set : sets_) {
        if (!set->finished()) return;
    }
    for (const auto& set : removed_) {
        if (!set->finished()) return;
    }
    log::info("shutdown: every revocation has finished");
    shutdown_ = Shutdown::kDone;
    shutdown_timer_->cancel();
    if (shutdown_done_) shutdown_done_();
}

Status Controller::status() const {
    Status s;
    s.version = kVersion;
    s.now = clock_.wall_seconds();
    // The monotonic clock: a wall-clock step must not make the uptime jump.
    s.uptime = std::chrono::duration_cast<std::chrono::seconds>(clock_.now() - started_at_).count();
    s.vault_address = vault_.address();
    const auto& health = vault_.health();
    switch (health.state) {
        case VaultClient::Health::State::kUnknown:
            s.vault_state = "unknown";
            break;
        case VaultClient::Health::State::kReachable:
            s.vault_state = "reachable";
            break;
        case VaultClient::Health::State::kUnreachable:
            s.vault_state = "unreachable";
            s.vault_error = health.last_error;
            break;
    }
    s.token = keeper_->status();
    s.plugin_clients = client_count_ ? client_count_() : 0;
    for (const auto& set : sets_)
        s.sets.push_back(set->status());
    s.health = overall_health(s);
    return s;
}

std::string overall_health(const Status& s) {
    bool degraded = s.vault_state != "reachable" || s.token.state != "valid";
    for (const auto& set : s.sets) {
        if (set.generation == 0 || set.state == "expired") return "failing";
        if (set.state == "degraded") degraded = true;
    }
    return degraded ? "degraded" : "ok";
}

}  // namespace pgbv::ctl
