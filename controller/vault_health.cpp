// Polls Vault's sys/health for status.

#include "controller/vault_health.hpp"

#include "controller/log.hpp"

namespace pgbv::ctl {

VaultHealth::VaultHealth(Clock& clock, VaultClient& vault, Duration interval)
    : clock_(clock), vault_(vault), interval_(interval) {
    timer_ = clock_.new_timer([this] { check(); });
}

void VaultHealth::start() {
    if (interval_ > Duration::zero()) timer_->arm_at(clock_.now());
}

std::string VaultHealth::state_of(const VaultHealthInfo& h) {
    if (!h.initialized || h.status == 501) return "uninitialized";
    if (h.sealed || h.status == 503) return "sealed";
    if (h.status == 472) return "dr_secondary";
    if (h.performance_standby || h.status == 473) return "perf_standby";
    if (h.standby || h.status == 429) return "standby";
    return "active";
}

void VaultHealth::check() {
    if (call_) return;
    call_ = vault_.health_check([this](Result<VaultHealthInfo> r) {
        call_.reset();
        on_answer(std::move(r));
        timer_->arm_at(clock_.now() + interval_);
    });
}

void VaultHealth::on_answer(Result<VaultHealthInfo> r) {
    checked_at_ = clock_.wall_seconds();
    if (!r.ok()) {
        if (!log::same_error(r.error().message, error_)) {
            log::warning("vault: %s; status keeps the last answer", r.error().message.c_str());
        }
        error_ = r.error().message;
        return;
    }
    error_.clear();
    const std::string state = state_of(r.value());
    const bool changed = !have_answer_ || state != state_;
    have_answer_ = true;
    last_ = std::move(r.value());
    state_ = state;
    if (!changed) return;
    const char* version = last_.version.empty() ? "?" : last_.version.c_str();
    if (state == "sealed") {
        log::warning(
                "vault: sys/health says Vault is sealed (HTTP %ld, version %s): requests fail "
                "with 503 until it is unsealed; current credentials stay in use, retrying",
                last_.status, version);
    } else if (state == "uninitialized") {
        log::warning(
                "vault: sys/health says Vault is not initialized (HTTP %ld): run vault "
                "operator init",
                last_.status);
    } else if (state == "standby" || state == "perf_standby") {
        log::info(
                "vault: sys/health: the node at %s is a %s (version %s); requests are "
                "forwarded or redirected (307) to the active node",
                vault_.address().c_str(), state == "standby" ? "standby" : "performance standby",
                version);
    } else {
        log::info("vault: sys/health: %s, version %s%s%s", state.c_str(), version,
                  last_.cluster_name.empty() ? "" : ", cluster ", last_.cluster_name.c_str());
    }
}

VaultHealthStatus VaultHealth::status() const {
    VaultHealthStatus s;
    s.enabled = interval_ > Duration::zero();
    s.checked_at = checked_at_;
    s.error = error_;
    if (have_answer_) {
        s.state = state_;
        s.code = last_.status;
        s.initialized = last_.initialized;
        s.sealed = last_.sealed;
        s.standby = last_.standby || last_.performance_standby;
        s.version = last_.version;
        s.cluster_name = last_.cluster_name;
    } else {
        s.state = s.enabled ? "unknown" : "off";
    }
    return s;
}

}  // namespace pgbv::ctl
