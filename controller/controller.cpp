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

Controller::Controller(const Config& config, Clock& clock, Jitter& jitter, VaultClient& vault,
                       const AuthSource& auth)
    : config_(config), clock_(clock), vault_(vault) {
    started_at_ = clock_.now();
    started_wall_ = clock_.wall_seconds();
    keeper_ = std::make_unique<TokenKeeper>(clock, jitter, vault, auth, config.vault,
                                            policy::relogin_lead(largest_margin(config)));
    for (const SetSettings& s : config.sets) {
        sets_.push_back(std::make_unique<CredentialSet>(
                CredentialSet::Deps{clock, jitter, vault, *keeper_, config.vault}, s,
                [this](const wire::Credentials& c) {
                    return publish_ ? publish_(c) : std::vector<ClientId>{};
                }));
    }
    keeper_->set_on_update([this] {
        for (auto& set : sets_)
            set->on_token_update();
    });
}

Controller::~Controller() {
    // Sets refer to the keeper: destroy them first.
    sets_.clear();
}

void Controller::start() {
    log::info("%s starting: Vault at %s, %s login, %zu credential set%s", kSoftware,
              config_.vault.address.c_str(), auth_method_name(config_.vault.auth_method),
              sets_.size(), sets_.size() == 1 ? "" : "s");
    keeper_->start();
    for (auto& set : sets_)
        set->start();
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
    if (CredentialSet* set = find(m.set)) {
        set->on_drained(client, m.generation, m.username);
    } else {
        log::debug("plugin: DRAINED for unknown set %s ignored", m.set.c_str());
    }
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
}

std::string Controller::rotate(std::string_view name) {
    CredentialSet* set = find(name);
    if (set == nullptr) return "no credential set named '" + std::string(name) + "'";
    set->rotate_now();
    return {};
}

Status Controller::status() const {
    Status s;
    s.version = kVersion;
    s.now = clock_.wall_seconds();
    s.uptime = s.now - started_wall_;
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
