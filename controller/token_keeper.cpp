// Keeps the controller's Vault token alive.

#include "controller/token_keeper.hpp"

#include "controller/lease_policy.hpp"
#include "controller/log.hpp"

namespace pgbv::ctl {
namespace {

// Past tokens remembered for life_of(): enough for the sets still draining under them.
constexpr std::size_t kPastTokensKept = 16;

long long secs(Duration d) {
    return std::chrono::duration_cast<std::chrono::seconds>(d).count();
}

bool mentions_cap(const std::vector<std::string>& warnings) {
    for (const auto& w : warnings) {
        if (w.find("capped") != std::string::npos || w.find("max_ttl") != std::string::npos) {
            return true;
        }
    }
    return false;
}

}  // namespace

TokenKeeper::TokenKeeper(Clock& clock, Jitter& jitter, VaultClient& vault, const AuthSource& auth,
                         const VaultSettings& settings, Duration relogin_lead)
    : clock_(clock),
      jitter_(jitter),
      vault_(vault),
      auth_(auth),
      retry_min_(settings.retry_min),
      retry_max_(settings.retry_max),
      lead_(relogin_lead) {
    timer_ = clock_.new_timer([this] { step(); });
    notify_timer_ = clock_.new_timer([this] {
        if (on_update_) on_update_();
    });
}

TokenKeeper::~TokenKeeper() = default;

void TokenKeeper::start() {
    timer_->arm_at(clock_.now());
}

bool TokenKeeper::usable(MonoTime now) const {
    return !token_.empty() && !rejected_ && (!end_ || now < *end_);
}

std::optional<TokenSource::Current> TokenKeeper::current() const {
    if (!usable(clock_.now())) return std::nullopt;
    return Current{id_, &token_};
}

TokenSource::Life TokenKeeper::life_of(std::uint64_t id) const {
    if (id == id_ && id != 0) return Life{end_, !end_ || capped_ || !renewable_};
    if (auto it = past_.find(id); it != past_.end()) return it->second;
    return Life{MonoTime{}, true};
}

void TokenKeeper::report_denied(std::uint64_t id) {
    if (id != id_ || rejected_ || login_wanted_) return;
    verify_wanted_ = true;
    // Not now: the caller is in the middle of its own callback.
    if (!call_) timer_->arm_at(clock_.now());
}

// Runs the set callbacks from the loop, never from inside a call into the keeper.
void TokenKeeper::notify() {
    notify_timer_->arm_at(clock_.now());
}

std::optional<MonoTime> TokenKeeper::relogin_time() const {
    if (!end_ || (!capped_ && renewable_)) return std::nullopt;
    return policy::relogin_at(issued_, *end_, lead_);
}

void TokenKeeper::step() {
    const MonoTime now = clock_.now();
    if (!token_.empty() && end_ && now >= *end_ && !expired_noted_) {
        expired_noted_ = true;
        login_wanted_ = true;
        // A new phase: logins start again from the shortest wait, not from where the
        // renewals' backoff had grown to.
        failures_ = 0;
        log::event(log::Level::kError, "login", "",
                   "vault: the token has expired before a new login succeeded; credential "
                   "sets cannot reach Vault until one does");
        notify();
    }
    if (call_) return;
    if (failures_ > 0 && now < retry_at_) {
        arm(now);
        return;
    }
    const auto relogin = relogin_time();
    if (login_wanted_ || token_.empty() || rejected_ || (relogin && now >= *relogin)) {
        // Never two login attempts closer than kMinStep, whatever else goes wrong.
        if (last_login_ && now < *last_login_ + policy::kMinStep) {
            timer_->arm_at(*last_login_ + policy::kMinStep);
            return;
        }
        last_login_ = now;
        login(now);
    } else if (verify_wanted_) {
        verify();
    } else if (next_renew_ && now >= *next_renew_) {
        renew(now);
    }
    arm(now);
}

void TokenKeeper::arm(MonoTime now) {
    std::optional<MonoTime> next;
    auto consider = [&](std::optional<MonoTime> t) {
        if (t && *t > now) next = policy::earliest(next, t);
    };
    if (!call_) {
        if (failures_ > 0 && retry_at_ > now) {
            consider(retry_at_);
        } else {
            consider(next_renew_);
            consider(relogin_time());
        }
    }
    if (!expired_noted_) consider(end_);
    if (next) {
        timer_->arm_at(*next);
    } else {
        timer_->cancel();
    }
}

void TokenKeeper::login(MonoTime) {
    logging_in_ = true;
    std::string error;
    if (auth_.method() == AuthMethod::kAppRole && auth_.secret_id_wrapped()) {
        login_wrapped();
        return;
    }
    if (auth_.method() != AuthMethod::kToken) {
        login_with_body(nullptr);
        return;
    }
    Secret candidate;
    if (!auth_.read_token(&candidate, &error)) {
        failed("reading the Vault token: " + error, false);
        return;
    }
    login_with_token(std::move(candidate));
}

// `<description> failed: Vault answered 400: <Vault's words>; <what to do>`.
std::string TokenKeeper::login_error(const VaultError& e) const {
    std::string text = e.detail.empty() ? e.message : e.detail;
    const std::string http = "HTTP " + std::to_string(e.status);
    if (e.status != 0 && text.rfind(http, 0) == 0) {
        text.erase(0, http.size());
        if (text.rfind(": ", 0) == 0) text.erase(0, 2);
        text = "Vault answered " + std::to_string(e.status) + (text.empty() ? "" : ": " + text);
    }
    return auth_.login_description() + " failed: " + text + "; " + auth_.login_hint(e.status);
}

// Every method but token: POST auth/<mount>/login.  `secret_id`: an unwrapped AppRole
// secret ID, used instead of secret_id_file.
void TokenKeeper::login_with_body(const Secret* secret_id) {
    Secret body;
    std::string error;
    if (!auth_.login_body(secret_id, &body, &error)) {
        failed(auth_.login_description() + ": " + error, false);
        return;
    }
    op_ = Op::kLogin;
    call_ = vault_.login(
            auth_.login_description(), auth_.mount(), std::move(body), [this](Result<AuthInfo> r) {
                call_.reset();
                op_ = Op::kNone;
                if (!r.ok()) {
                    failed(login_error(r.error()), false);
                } else {
                    AuthInfo& a = r.value();
                    const auto ttl = a.ttl > Duration::zero() ? std::optional(a.ttl) : std::nullopt;
                    const std::string how = auth_.method() == AuthMethod::kAppRole
                                                    ? std::string("AppRole login")
                                                    : std::string(auth_.method_name()) + " login";
                    adopt(std::move(a.token), ttl, a.renewable, a.ttl, how.c_str(), a.batch);
                }
                step();
            });
}

// AppRole with a response-wrapped secret ID: unwrap once, then log in with what it held.
void TokenKeeper::login_wrapped() {
    Secret role_id;
    auto wrapping = std::make_shared<Secret>();
    std::string error;
    if (!auth_.read_approle(&role_id, wrapping.get(), &error)) {
        failed(auth_.login_description() + ": " + error, false);
        return;
    }
    if (!unwrapped_secret_id_.empty() && *wrapping == wrapping_token_) {
        login_with_body(&unwrapped_secret_id_);
        return;
    }
    op_ = Op::kLogin;
    // Look first: an unwrap consumes the token, and a token from elsewhere (a wrapped
    // response of another path, planted in the file) must not be unwrapped at all.
    call_ = vault_.wrapping_lookup(*wrapping, [this, wrapping](Result<WrapInfo> r) {
        call_.reset();
        op_ = Op::kNone;
        const std::string file = auth_.secret_id_file();
        const std::string prefix = "auth/" + auth_.mount() + "/role/";
        const std::string suffix = "/secret-id";
        if (!r.ok()) {
            if (r.error().kind == VaultError::Kind::kRejected ||
                r.error().kind == VaultError::Kind::kDenied) {
                failed("secret_id_file " + file +
                               " holds a response-wrapping token that Vault no longer knows: "
                               "it was already unwrapped (a wrapping token works once) or it "
                               "expired (Vault answered " +
                               std::to_string(r.error().status) +
                               "); deliver a new wrapped secret ID there (vault write "
                               "-wrap-ttl=... -f " +
                               prefix + "<role>" + suffix + ")",
                       false);
            } else {
                failed(auth_.login_description() +
                               ": checking the wrapped secret ID: " + r.error().message,
                       false);
            }
        } else {
            const std::string& path = r.value().creation_path;
            const bool ok = path.size() > prefix.size() + suffix.size() &&
                            path.rfind(prefix, 0) == 0 &&
                            path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
            if (!ok) {
                failed("secret_id_file " + file + " holds a wrapping token created by " +
                               (path.empty() ? std::string("(no path)") : path) + ", not by " +
                               prefix + "<role>" + suffix +
                               ": refusing to unwrap it (it does not wrap a secret ID of this "
                               "AppRole mount; check the file and auth_mount)",
                       false);
            } else {
                unwrap(wrapping);
                return;
            }
        }
        step();
    });
}

void TokenKeeper::unwrap(std::shared_ptr<Secret> wrapping) {
    op_ = Op::kLogin;
    call_ = vault_.unwrap_secret_id(*wrapping, [this, wrapping](Result<UnwrappedSecretId> r) {
        call_.reset();
        op_ = Op::kNone;
        if (!r.ok()) {
            const bool used = r.error().kind == VaultError::Kind::kRejected ||
                              r.error().kind == VaultError::Kind::kDenied;
            failed(used ? "secret_id_file " + auth_.secret_id_file() +
                                   ": Vault refused to unwrap its wrapping token (" +
                                   r.error().detail +
                                   "): it was already used or expired; deliver a new wrapped "
                                   "secret ID there"
                        : auth_.login_description() +
                                   ": unwrapping the secret ID: " + r.error().message,
                   false);
            step();
            return;
        }
        wrapping_token_ = std::move(*wrapping);
        unwrapped_secret_id_ = std::move(r.value().secret_id);
        log::info(
                "vault: unwrapped the secret ID in %s (its wrapping token is now used up; the "
                "secret ID is kept in memory for later logins)",
                auth_.secret_id_file().c_str());
        login_with_body(&unwrapped_secret_id_);
        if (!call_) step();
    });
}

// Token method: learn the token's TTL before using it.
void TokenKeeper::login_with_token(Secret candidate) {
    logging_in_ = true;
    op_ = Op::kLogin;
    auto shared = std::make_shared<Secret>(std::move(candidate));
    call_ = vault_.lookup_self(*shared, [this, shared](Result<TokenInfo> r) {
        call_.reset();
        op_ = Op::kNone;
        if (!r.ok()) {
            const bool dead = r.error().kind == VaultError::Kind::kDenied;
            failed("the token from " + auth_.token_origin() +
                           (dead ? " is not accepted by Vault: " : ": ") + r.error().message,
                   false);
        } else {
            const TokenInfo& info = r.value();
            const Duration increment =
                    info.creation_ttl > Duration::zero() ? info.creation_ttl : info.ttl;
            // ttl 0 means "no expiry" only for a token created without one (root);
            // otherwise it is a token in its last second.
            const bool never =
                    info.ttl == Duration::zero() && info.creation_ttl == Duration::zero();
            adopt(std::move(*shared), never ? std::nullopt : std::optional(info.ttl),
                  info.renewable, increment, "token", info.batch);
        }
        step();
    });
}

void TokenKeeper::adopt(Secret token, std::optional<Duration> ttl, bool renewable,
                        Duration increment, const char* how, bool batch) {
    const MonoTime now = clock_.now();
    // A batch token cannot be renewed, whatever else the answer says.
    if (batch) renewable = false;
    const bool same = !token_.empty() && token_ == token;
    const std::optional<MonoTime> end = ttl ? std::optional<MonoTime>(now + *ttl) : std::nullopt;
    if (same) {
        // The token file still holds the token we have: it may have been renewed by
        // someone else (e.g. a Vault Agent), but it is not a new token.
        end_ = end;
        renewable_ = renewable;
        batch_ = batch;
        rejected_ = false;
        if (end_ && *end_ <= now) {
            // Its last second (lookup-self says ttl 0): nothing was gained.
            failed(auth_.token_origin() +
                           " still holds the current token, which has ended; "
                           "waiting for a new token there",
                   false);
            return;
        }
        expired_noted_ = false;
        const auto relogin = relogin_time();
        if (relogin && now >= *relogin) {
            // Constant text: one log line for the whole wait, not one per retry.
            const bool env = auth_.token_origin() == "VAULT_TOKEN";
            failed(auth_.token_origin() + " still holds the current token, which ends soon and " +
                           (batch_ ? "cannot be renewed (a batch token)" : "cannot be renewed") +
                           "; the token method cannot log in again by itself, so credentials "
                           "fetched with it end with it: " +
                           (env ? "VAULT_TOKEN cannot change without a restart (give the token "
                                  "in token_file, e.g. a Vault Agent sink, or restart with a new "
                                  "one)"
                                : "waiting for a new token there"),
                   false);
            notify();
            return;
        }
        next_renew_ = renewable_ && ttl && !capped_
                              ? std::optional(policy::renew_at(now, *ttl, lead_, jitter_.next()))
                              : std::nullopt;
        login_wanted_ = false;
        logging_in_ = false;
        succeeded();
        notify();
        return;
    }
    if (id_ != 0) {
        past_[id_] = Life{end_, true};
        while (past_.size() > kPastTokensKept)
            past_.erase(past_.begin());
    }
    token_ = std::move(token);
    ++id_;
    ++logins_;
    logging_in_ = false;
    vault_.metrics().login(true);
    issued_ = now;
    end_ = end;
    renewable_ = renewable;
    batch_ = batch;
    capped_ = false;
    rejected_ = false;
    expired_noted_ = false;
    increment_ = increment;
    login_wanted_ = false;
    verify_wanted_ = false;
    next_renew_ = renewable_ && ttl
                          ? std::optional(policy::renew_at(now, *ttl, lead_, jitter_.next()))
                          : std::nullopt;
    if (ttl) {
        log::event(log::Level::kInfo, "login", "",
                   "vault: logged in (%s): token #%llu, ttl %llds, %s", how,
                   static_cast<unsigned long long>(id_), secs(*ttl),
                   renewable_ ? "renewable"
                   : batch_   ? "batch token (never renewed; leases end with it)"
                              : "not renewable");
    } else {
        log::event(log::Level::kInfo, "login", "", "vault: logged in (%s): token #%llu, no expiry",
                   how, static_cast<unsigned long long>(id_));
    }
    succeeded();
    notify();
}

void TokenKeeper::renew(MonoTime) {
    if (auth_.method() == AuthMethod::kToken) {
        Secret candidate;
        std::string error;
        if (auth_.read_token(&candidate, &error) && !(candidate == token_)) {
            log::event(log::Level::kInfo, "login", "",
                       "vault: %s holds a new token; switching to it",
                       auth_.token_origin().c_str());
            login_with_token(std::move(candidate));
            return;
        }
    }
    op_ = Op::kRenew;
    call_ = vault_.renew_self(token_, increment_, [this](Result<AuthInfo> r) {
        call_.reset();
        op_ = Op::kNone;
        on_renewed(std::move(r));
        step();
    });
}

void TokenKeeper::on_renewed(const Result<AuthInfo>& r) {
    const MonoTime now = clock_.now();
    if (!r.ok()) {
        const VaultError& e = r.error();
        if (e.kind == VaultError::Kind::kDenied) {
            rejected_ = true;
            login_wanted_ = true;
            failed("token renewal refused, logging in again: " + e.message, true);
            notify();
            return;
        }
        // "past the max TTL, cannot renew" (a 500 in Vault, a 400 elsewhere: match the
        // text), "lease is not renewable", "batch tokens cannot be renewed": the end we
        // know is final; log in again before it.
        const bool final_end = e.message.find("past the max TTL") != std::string::npos ||
                               e.message.find("not renewable") != std::string::npos ||
                               e.message.find("cannot be renewed") != std::string::npos;
        if (e.kind == VaultError::Kind::kRejected || final_end) {
            capped_ = true;
            next_renew_.reset();
            log::event(log::Level::kInfo, "renew", "",
                       "vault: token #%llu cannot be renewed any more (%s); logging in again "
                       "before it ends",
                       static_cast<unsigned long long>(id_), e.message.c_str());
            succeeded();
            notify();
            return;
        }
        next_renew_ = now;  // retried after the backoff
        failed(e.message, false);
        return;
    }
    const AuthInfo& a = r.value();
    end_ = now + a.ttl;
    renewable_ = a.renewable;
    if (policy::renewal_capped(increment_, a.ttl) || !a.renewable || mentions_cap(a.warnings)) {
        capped_ = true;
        next_renew_.reset();
        log::event(log::Level::kInfo, "renew", "",
                   "vault: token #%llu renewed for %llds; its max TTL is reached, logging in "
                   "again %llds before it ends",
                   static_cast<unsigned long long>(id_), secs(a.ttl),
                   secs(to_duration(*end_ - *relogin_time())));
    } else {
        next_renew_ = policy::renew_at(now, a.ttl, lead_, jitter_.next());
        log::event(log::Level::kInfo, "renew", "", "vault: token #%llu renewed for %llds",
                   static_cast<unsigned long long>(id_), secs(a.ttl));
    }
    succeeded();
    notify();
}

void TokenKeeper::verify() {
    verify_wanted_ = false;
    op_ = Op::kVerify;
    call_ = vault_.lookup_self(token_, [this](Result<TokenInfo> r) {
        call_.reset();
        op_ = Op::kNone;
        if (!r.ok() && r.error().kind == VaultError::Kind::kDenied) {
            rejected_ = true;
            login_wanted_ = true;
            log::event(log::Level::kWarning, "login", "",
                       "vault: token #%llu is no longer accepted (%s); logging in again",
                       static_cast<unsigned long long>(id_), r.error().message.c_str());
            notify();
        } else if (r.ok()) {
            // The token is fine: the 403 a set saw is a policy matter, which that set
            // reports itself.
            log::debug("vault: token #%llu checked after a 403: still valid",
                       static_cast<unsigned long long>(id_));
        }
        step();
    });
}

void TokenKeeper::failed(const std::string& error, bool token_dead) {
    const MonoTime now = clock_.now();
    if (logging_in_) {
        logging_in_ = false;
        vault_.metrics().login(false);
    }
    ++failures_;
    std::optional<Duration> left;
    if (end_ && !token_dead && *end_ > now) left = to_duration(*end_ - now);
    const Duration wait = policy::backoff(failures_, retry_min_, retry_max_, jitter_.next(), left);
    retry_at_ = now + wait;
    if (failures_ == 1 || !log::same_error(error, last_error_)) {
        log::event(log::Level::kWarning, "vault", "", "vault: %s; retrying in %.1fs", error.c_str(),
                   static_cast<double>(wait.count()) / 1000.0);
    } else {
        log::debug("vault: still failing (attempt %d): %s", failures_, error.c_str());
    }
    last_error_ = error;
}

void TokenKeeper::succeeded() {
    if (failures_ > 0) {
        log::event(log::Level::kInfo, "vault", "",
                   "vault: token operations succeed again after %d failed attempts", failures_);
    }
    failures_ = 0;
    last_error_.clear();
}

TokenStatus TokenKeeper::status() const {
    const MonoTime now = clock_.now();
    TokenStatus s;
    s.method = auth_.method_name();
    if (auth_.method() != AuthMethod::kToken) s.auth_path = "auth/" + auth_.mount();
    s.role = auth_.role();
    s.batch = batch_;
    s.logins = logins_;
    s.renewable = renewable_;
    s.max_ttl_reached = capped_;
    s.last_error = last_error_;
    s.expires = token_.empty() || end_.has_value();
    if (end_) s.ttl = std::max<long long>(0, secs(to_duration(*end_ - now)));
    if (usable(now)) {
        s.state = "valid";
    } else if (token_.empty()) {
        s.state = failures_ > 0 ? "failing" : "logging_in";
    } else if (rejected_) {
        s.state = "rejected";
    } else {
        s.state = "expired";
    }
    return s;
}

}  // namespace pgbv::ctl
