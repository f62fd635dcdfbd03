// Keeps the controller's Vault token alive: log in, renew, log in again before it ends.
//
// Life of a token:
//   login        AppRole, Kubernetes, JWT, cert: POST auth/<mount>/login (auth_source.hpp
//                builds the body, re-reading its files).  A wrapped AppRole secret ID is
//                looked up (sys/wrapping/lookup: it must come from
//                auth/<mount>/role/<r>/secret-id), unwrapped once and kept in memory;
//                it is unwrapped again only when secret_id_file holds another wrapping
//                token.  Token method: read VAULT_TOKEN or token_file, then GET
//                lookup-self to learn its TTL.
//   batch tokens never renewed (not renewable by nature); their end is final.
//   renew-self   at about two thirds of its TTL (lease_policy.hpp), while it is
//                renewable; a capped renewal means its max TTL is reached: its end is
//                final.
//   login again  relogin_lead before a final end (the largest rotation margin plus
//                policy::kReloginExtra), so that every credential set can fetch under the
//                new token while the old one still lives.  A new token gets a new id;
//                the sets see it through TokenSource and move their credentials.
//   token_file   re-read before every renewal and login: a changed file is a new token.
//   failures     login and renewal retry with exponential backoff and jitter; a 403 on a
//                renewal, or a 403 a set reports that lookup-self confirms, means the
//                token is dead: log in again.
//
// Logs one line per login, renewal and state change, never the token.  Calls the update
// callback (from the event loop, never from inside a TokenSource call) whenever the
// token or its end changes.
//
// REQUIRES: clock, jitter, vault client and auth source outlive the keeper.

#ifndef PGBV_CONTROLLER_TOKEN_KEEPER_HPP
#define PGBV_CONTROLLER_TOKEN_KEEPER_HPP

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "controller/auth_source.hpp"
#include "controller/clock.hpp"
#include "controller/config.hpp"
#include "controller/status.hpp"
#include "controller/token_source.hpp"
#include "controller/vault_client.hpp"

namespace pgbv::ctl {

class TokenKeeper final : public TokenSource {
public:
    TokenKeeper(Clock& clock, Jitter& jitter, VaultClient& vault, const AuthSource& auth,
                const VaultSettings& settings, Duration relogin_lead);
    ~TokenKeeper() override;

    // Called after every change of the token or of its end.
    void set_on_update(std::function<void()> on_update) { on_update_ = std::move(on_update); }

    // Logs in (asynchronously).
    void start();

    // A reload changed the largest rotation margin: log in again that much earlier.
    void set_relogin_lead(Duration lead) {
        if (lead == lead_) return;
        lead_ = lead;
        if (!token_.empty()) timer_->arm_at(clock_.now());  // re-plan from the loop
    }

    std::optional<Current> current() const override;
    Life life_of(std::uint64_t id) const override;
    void report_denied(std::uint64_t id) override;

    TokenStatus status() const;

private:
    enum class Op { kNone, kLogin, kVerify, kRenew };

    void step();
    void login(MonoTime now);
    void login_with_token(Secret candidate);
    void login_with_body(const Secret* secret_id);
    void login_wrapped();
    void unwrap(std::shared_ptr<Secret> wrapping);
    std::string login_error(const VaultError& e) const;
    void renew(MonoTime now);
    void verify();
    // `ttl` nullopt: the token never expires.
    void adopt(Secret token, std::optional<Duration> ttl, bool renewable, Duration increment,
               const char* how, bool batch = false);
    void on_renewed(const Result<AuthInfo>& result);
    void failed(const std::string& error, bool token_dead);
    void succeeded();
    std::optional<MonoTime> relogin_time() const;
    void arm(MonoTime now);
    void notify();
    bool usable(MonoTime now) const;

    Clock& clock_;
    Jitter& jitter_;
    VaultClient& vault_;
    const AuthSource& auth_;
    Duration retry_min_;
    Duration retry_max_;
    Duration lead_;
    std::function<void()> on_update_;
    std::unique_ptr<Timer> timer_;
    std::unique_ptr<Timer> notify_timer_;

    VaultClient::Pending call_;
    Op op_ = Op::kNone;

    Secret token_;
    std::uint64_t id_ = 0;
    MonoTime issued_{};
    std::optional<MonoTime> end_;  // nullopt: no expiry
    bool renewable_ = false;
    bool batch_ = false;
    bool capped_ = false;
    bool rejected_ = false;  // Vault refused it; unusable until the next login
    bool expired_noted_ = false;
    Duration increment_{0};
    std::optional<MonoTime> next_renew_;
    std::map<std::uint64_t, Life> past_;

    bool login_wanted_ = true;
    std::optional<MonoTime> last_login_;
    bool verify_wanted_ = false;
    int failures_ = 0;
    MonoTime retry_at_{};
    std::string last_error_;
    std::uint64_t logins_ = 0;
    bool logging_in_ = false;  // a login attempt is under way: its failure is counted

    // AppRole with secret_id_wrapped: the wrapping token last unwrapped and the secret ID
    // it gave (both wiped when replaced or released).
    Secret wrapping_token_;
    Secret unwrapped_secret_id_;
};

}  // namespace pgbv::ctl

#endif  // PGBV_CONTROLLER_TOKEN_KEEPER_HPP
