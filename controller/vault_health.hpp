// Polls Vault's sys/health for status: initialised, sealed, standby, version, cluster.
//
// GET sys/health?standbyok=true&perfstandbyok=true at start and every health_interval
// (0: never).  The answer is only reported (pgbvctl status, one log line per change of
// state: sealed, standby, back to active); the token keeper and the credential sets do
// their own retrying whatever it says.  A failed check keeps the last answer and notes
// the error.
//
// REQUIRES: clock and vault client outlive it.

#ifndef PGBV_CONTROLLER_VAULT_HEALTH_HPP
#define PGBV_CONTROLLER_VAULT_HEALTH_HPP

#include <memory>
#include <string>

#include "controller/clock.hpp"
#include "controller/status.hpp"
#include "controller/vault_client.hpp"

namespace pgbv::ctl {

class VaultHealth {
public:
    VaultHealth(Clock& clock, VaultClient& vault, Duration interval);

    // First check now (from the loop), then every interval.  Nothing when interval is 0.
    void start();

    VaultHealthStatus status() const;

    // The state's name from an answer: active, standby, perf_standby, sealed,
    // uninitialized, dr_secondary.
    static std::string state_of(const VaultHealthInfo& info);

private:
    void check();
    void on_answer(Result<VaultHealthInfo> result);

    Clock& clock_;
    VaultClient& vault_;
    Duration interval_;
    std::unique_ptr<Timer> timer_;
    VaultClient::Pending call_;
    bool have_answer_ = false;
    VaultHealthInfo last_;
    std::string state_;
    std::string error_;
    std::int64_t checked_at_ = 0;
};

}  // namespace pgbv::ctl

#endif  // PGBV_CONTROLLER_VAULT_HEALTH_HPP
