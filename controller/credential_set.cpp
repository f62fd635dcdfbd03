// One credential set: its credentials' life, generation by generation.

#include "controller/credential_set.hpp"

#include <algorithm>

#include "controller/lease_policy.hpp"
#include "controller/log.hpp"

namespace pgbv::ctl {
namespace {

long long secs(Duration d) {
    return std::chrono::duration_cast<std::chrono::seconds>(d).count();
}

unsigned long long ull(std::uint64_t v) {
    return static_cast<unsigned long long>(v);
}

// Why a fetch happens; compared by address where the reaction differs.
constexpr const char* kLoginRefused = "PostgreSQL refused the current ones";
constexpr const char* kRequested = "a rotation was requested";
constexpr const char* kSettingsChanged = "its settings changed (reload)";

// The `reason` label of pgbv_rotations_total (metrics.hpp) for why a fetch happened.
std::string_view reason_label(std::string_view why) {
    if (why == kRequested) return "manual";
    if (why == kLoginRefused) return "login_failed";
    if (why == kSettingsChanged) return "settings_changed";
    if (why == "the Vault token that fetched them was replaced") return "token_end";
    if (why == "the lease reaches its max TTL" || why == "the lease is not renewable")
        return "scheduled";
    if (why == "Vault no longer knows their lease") return "lease_lost";
    if (why == "renewals are refused and the lease ends soon") return "renewal_refused";
    if (why == "refresh_interval has passed") return "kv_changed";
    if (why == "Vault has rotated the password (its ttl ended)" ||
        why == "Vault's due rotation did not show yet")
        return "vault_rotated";
    return "other";
}

const char* state_name(int s) {
    static const char* const kNames[] = {"waiting_for_token", "fetching", "serving",
                                         "rotating",          "degraded", "expired"};
    return kNames[s];
}

}  // namespace

CredentialSet::CredentialSet(Deps deps, SetSettings settings, Publish publish)
    : clock_(deps.clock),
      jitter_(deps.jitter),
      vault_(deps.vault),
      tokens_(deps.tokens),
      vault_settings_(deps.vault_settings),
      settings_(std::move(settings)),
      publish_(std::move(publish)),
      source_(make_secret_source(settings_)) {
    timer_ = clock_.new_timer([this] { step(); });
}

CredentialSet::~CredentialSet() = default;

void CredentialSet::start() {
    started_ = true;
    step();
}

void CredentialSet::on_token_update() {
    // A new token may cure what failed with the old one: do not sit out the backoff.
    const auto token = tokens_.current();
    if (token && current_ && token->id != current_->token_id) retry_at_ = clock_.now();
    if (token && !current_) retry_at_ = clock_.now();
    step();
}

std::optional<MonoTime> CredentialSet::hard_end(const Generation& g) const {
    // A static role's password or a KV secret does not die with the token that read it.
    if (!g.leased) return std::nullopt;
    return policy::earliest(g.lease_end, tokens_.life_of(g.token_id).end);
}

std::optional<MonoTime> CredentialSet::deadline(const Generation& g, bool* token_bound) const {
    *token_bound = false;
    if (!g.leased) return std::nullopt;
    const std::optional<MonoTime> lease_final =
            (g.capped || !g.renewable) ? g.lease_end : std::nullopt;
    const TokenSource::Life life = tokens_.life_of(g.token_id);
    const std::optional<MonoTime> token_final = life.final ? life.end : std::nullopt;
    *token_bound = token_final && (!lease_final || *token_final < *lease_final);
    return policy::earliest(lease_final, token_final);
}

std::optional<MonoTime> CredentialSet::rotate_time(const Generation& g, bool* token_bound) const {
    const auto d = deadline(g, token_bound);
    if (!d) return std::nullopt;
    const Duration life = g.ttl > Duration::zero() ? g.ttl : 2 * settings_.rotation_margin;
    return policy::rotate_at(*d, settings_.rotation_margin, life);
}

std::optional<MonoTime> CredentialSet::retired_deadline(const Retired& r) const {
    return hard_end(r.gen);
}

const char* CredentialSet::fetch_reason(MonoTime now, std::uint64_t token_id) const {
    if (removed_) return nullptr;
    if (!current_) return "first fetch";
    if (forced_ != nullptr) return forced_;
    if (!source_->leased()) {
        if (!current_->reread_at || now < *current_->reread_at) return nullptr;
        if (source_->kind() == SecretKind::kKv) return "refresh_interval has passed";
        return rotation_wait_since_ ? "Vault's due rotation did not show yet"
                                    : "Vault has rotated the password (its ttl ended)";
    }
    if (current_->token_id != token_id) return "the Vault token that fetched them was replaced";
    bool token_bound = false;
    const auto at = rotate_time(*current_, &token_bound);
    // Bound by the current token's end: only a new login helps, which the keeper does.
    if (at && now >= *at && !token_bound) {
        return current_->renewable ? "the lease reaches its max TTL" : "the lease is not renewable";
    }
    // Renewal is refused (403) and the lease ends soon: new credentials may still be had.
    // (When Vault is merely unreachable, retrying the renewal is better: it keeps the
    // credentials PgBouncer already uses.)
    if (renew_denied_ && failures_ > 0 && current_->lease_end &&
        now >= policy::rotate_at(*current_->lease_end, settings_.rotation_margin, current_->ttl)) {
        return "renewals are refused and the lease ends soon";
    }
    return nullptr;
}

bool CredentialSet::renew_due(MonoTime now) const {
    return current_ && current_->renewable && !current_->capped && current_->lease_alive &&
           next_renew_ && now >= *next_renew_;
}

void CredentialSet::step() {
    if (!started_) return;
    const MonoTime now = clock_.now();
    if (removed_) release_removed(now);
    step_retired(now);
    if (current_ && state_ != State::kExpired) {
        if (const auto end = hard_end(*current_); end && now >= *end && failures_ > 0) {
            // The credentials just ended: nothing left to protect, so retry from the
            // shortest wait again and notice Vault's return soon.  (The failure count
            // stays above zero, so the warning is not logged again.)
            failures_ = 1;
            retry_at_ = now;
        }
    }
    if (!call_) {
        const auto token = tokens_.current();
        if (token && !(failures_ > 0 && now < retry_at_)) {
            if (const char* why = fetch_reason(now, token->id)) {
                fetch(*token, why);
            } else if (renew_due(now)) {
                renew(*token);
            }
        }
    }
    update_state(now);
    arm(now);
    if (finished() && on_finished_) on_finished_();
}

void CredentialSet::step_retired(MonoTime now) {
    if (retired_.empty() || !tokens_.current()) return;
    for (auto& [number, r] : retired_) {
        if (r.call || r.gen.lease_id.empty()) continue;  // leaseless: nothing to revoke
        const auto dl = retired_deadline(r);
        const bool due = r.drained || (dl && now >= *dl);
        if (due && now >= r.retry_at) revoke(r);
    }
}

void CredentialSet::arm(MonoTime now) {
    std::optional<MonoTime> next;
    auto consider = [&](std::optional<MonoTime> t) {
        if (t && *t > now) next = policy::earliest(next, t);
    };
    if (!call_ && current_) {
        if (failures_ > 0 && retry_at_ > now) {
            consider(retry_at_);
        } else {
            bool token_bound = false;
            const auto at = rotate_time(*current_, &token_bound);
            if (!token_bound) consider(at);
            if (current_->lease_end && failures_ > 0 && renew_denied_) {
                consider(policy::rotate_at(*current_->lease_end, settings_.rotation_margin,
                                           current_->ttl));
            }
            if (current_->renewable && !current_->capped) consider(next_renew_);
            consider(current_->reread_at);
        }
    } else if (!call_ && failures_ > 0) {
        consider(retry_at_);
    }
    if (current_) consider(hard_end(*current_));  // to notice expiry
    for (const auto& [number, r] : retired_) {
        if (r.call) continue;
        const auto dl = retired_deadline(r);
        const bool due = r.drained || (dl && now >= *dl);
        consider(due ? std::optional(r.retry_at) : dl);
    }
    if (next) {
        timer_->arm_at(*next);
    } else {
        timer_->cancel();
    }
}

void CredentialSet::fetch(const TokenSource::Current& token, const char* reason) {
    op_ = Op::kFetch;
    const std::uint64_t token_id = token.id;
    log::debug("set %s: fetching credentials from %s (%s)", name().c_str(), source_->path().c_str(),
               reason);
    call_ = source_->fetch(vault_, *token.token,
                           [this, token_id, reason](Result<SecretSource::Fetched> r) {
                               call_.reset();
                               op_ = Op::kNone;
                               on_fetched(std::move(r), token_id, reason);
                               step();
                           });
}

MonoTime CredentialSet::next_read(const SecretSource::Fetched& read, MonoTime now) const {
    if (source_->kind() == SecretKind::kKv) return now + settings_.refresh_interval;
    return policy::static_reread_at(now, read.ttl);
}

void CredentialSet::on_fetched(Result<SecretSource::Fetched> r, std::uint64_t token_id,
                               const char* reason) {
    if (!r.ok()) {
        failed(r.error(), token_id);
        return;
    }
    const MonoTime now = clock_.now();
    SecretSource::Fetched& c = r.value();
    if (!source_->leased() && current_ && current_->username == c.username &&
        current_->password.view() == c.password.view()) {
        on_unchanged(c, reason, now);
        return;
    }
    Generation g;
    g.number = ++last_number_;
    g.leased = source_->leased();
    g.username = std::move(c.username);
    g.password = std::move(c.password);
    g.lease_id = std::move(c.lease_id);
    g.renewable = c.renewable;
    g.ttl = c.ttl;
    if (c.ttl > Duration::zero()) g.lease_end = now + c.ttl;
    g.capped = !c.renewable;
    g.token_id = token_id;
    if (!source_->leased()) {
        g.lease_end.reset();
        g.reread_at = next_read(c, now);
        if (source_->kind() == SecretKind::kStatic) g.vault_rotation = now + c.ttl;
        g.version = c.version;
        rotation_wait_since_.reset();
        rotation_stuck_logged_ = false;
    }

    std::optional<Generation> old = std::move(current_);
    current_ = std::move(g);
    next_renew_ = current_->renewable && current_->lease_end
                          ? std::optional(policy::renew_at(now, c.ttl, settings_.rotation_margin,
                                                           jitter_.next()))
                          : std::nullopt;
    forced_ = nullptr;
    if (failures_ > 0) {
        log::event(log::Level::kInfo, "vault", name(),
                   "set %s: Vault answers again after %d failed attempts", name().c_str(),
                   failures_);
    }
    failures_ = 0;
    last_error_.clear();
    if (!source_->leased()) {
        if (!old) {
            log::event(log::Level::kInfo, "fetch", name(),
                       "set %s: generation %llu: user %s from %s", name().c_str(),
                       ull(current_->number), current_->username.c_str(), source_text().c_str());
        } else {
            log::event(log::Level::kInfo, "rotate", name(),
                       "set %s: new generation %llu: user %s from %s because %s; generation %llu "
                       "(user %s) drains (no lease, nothing to revoke)",
                       name().c_str(), ull(current_->number), current_->username.c_str(),
                       source_text().c_str(), reason, ull(old->number), old->username.c_str());
            vault_.metrics().rotation(name(), reason_label(reason));
            retire(std::move(*old), reason);
        }
        publish_current();
        return;
    }
    log::debug("set %s: generation %llu has lease %s", name().c_str(), ull(current_->number),
               current_->lease_id.c_str());

    if (!old) {
        log::event(log::Level::kInfo, "fetch", name(),
                   "set %s: generation %llu: user %s (lease %llds, %s)", name().c_str(),
                   ull(current_->number), current_->username.c_str(), secs(c.ttl),
                   c.renewable ? "renewable" : "not renewable");
    } else {
        const auto end = hard_end(*old);
        log::event(log::Level::kInfo, "rotate", name(),
                   "set %s: rotated to generation %llu: user %s (lease %llds) because %s; "
                   "generation %llu (user %s) drains, revoked when drained or in %llds",
                   name().c_str(), ull(current_->number), current_->username.c_str(), secs(c.ttl),
                   reason, ull(old->number), old->username.c_str(),
                   end ? std::max<long long>(0, secs(to_duration(*end - now))) : -1LL);
        vault_.metrics().rotation(name(), reason_label(reason));
        retire(std::move(*old), reason);
    }
    publish_current();
}

void CredentialSet::on_unchanged(const SecretSource::Fetched& c, const char* reason, MonoTime now) {
    Generation& g = *current_;
    // A report that came while this read was in flight may have seen a newer secret than
    // the read did: it gets its own read.
    if (forced_ == reason) forced_ = nullptr;
    if (failures_ > 0) {
        log::event(log::Level::kInfo, "vault", name(),
                   "set %s: Vault answers again after %d failed attempts", name().c_str(),
                   failures_);
    }
    failures_ = 0;
    last_error_.clear();
    if (source_->kind() == SecretKind::kKv) {
        g.reread_at = next_read(c, now);
        if (c.version != g.version) {
            log::event(log::Level::kInfo, "fetch", name(),
                       "set %s: %s is now version %lld with the same user and password; "
                       "nothing to push",
                       name().c_str(), source_->path().c_str(), static_cast<long long>(c.version));
            g.version = c.version;
        } else if (reason == kLoginRefused) {
            log::event(log::Level::kWarning, "fetch", name(),
                       "set %s: %s still holds the user and password PostgreSQL refused "
                       "(version %lld); fix the secret (vault kv put) or the role in PostgreSQL; "
                       "read again in %llds or on the next refused login",
                       name().c_str(), source_->path().c_str(), static_cast<long long>(g.version),
                       secs(settings_.refresh_interval));
        } else if (reason == kRequested) {
            log::info("set %s: %s has not changed (version %lld); nothing to push", name().c_str(),
                      source_->path().c_str(), static_cast<long long>(g.version));
        }
        return;
    }
    // A static role.
    g.vault_rotation = now + c.ttl;
    if (c.ttl > Duration::zero()) {
        // Vault does not mean to rotate it before ttl: follow Vault.
        rotation_wait_since_.reset();
        rotation_stuck_logged_ = false;
        g.reread_at = next_read(c, now);
        if (reason == kLoginRefused) {
            log::event(log::Level::kWarning, "fetch", name(),
                       "set %s: PostgreSQL refuses user %s but Vault still reports the same "
                       "password for %s, next rotation in %llds; check the static role (vault "
                       "write -f %s/rotate-role/%s rotates it now)",
                       name().c_str(), g.username.c_str(), source_->path().c_str(), secs(c.ttl),
                       settings_.mount.c_str(), settings_.role.c_str());
        } else if (reason == kRequested) {
            log::event(log::Level::kInfo, "fetch", name(),
                       "set %s: %s shows the same password (Vault rotates it in %llds; vault "
                       "write -f %s/rotate-role/%s rotates it now); nothing to push",
                       name().c_str(), source_->path().c_str(), secs(c.ttl),
                       settings_.mount.c_str(), settings_.role.c_str());
        }
        return;
    }
    // Vault's rotation is due but not done yet: read again shortly, for a while.
    if (!rotation_wait_since_) rotation_wait_since_ = now;
    if (now - *rotation_wait_since_ < policy::kStaticRotationPollLimit) {
        g.reread_at = now + policy::kStaticRotationPoll;
        log::debug("set %s: %s still shows the old password; reading again in %lldms",
                   name().c_str(), source_->path().c_str(),
                   static_cast<long long>(policy::kStaticRotationPoll.count()));
        return;
    }
    g.reread_at = now + policy::kStaticRotationFallback;
    if (!rotation_stuck_logged_) {
        rotation_stuck_logged_ = true;
        log::event(log::Level::kWarning, "fetch", name(),
                   "set %s: Vault's rotation of %s has been due for %llds and still shows the "
                   "old password; reading again every %llds (check Vault's log: it may fail to "
                   "change the password in PostgreSQL)",
                   name().c_str(), source_->path().c_str(),
                   secs(to_duration(now - *rotation_wait_since_)),
                   secs(policy::kStaticRotationFallback));
    }
}

void CredentialSet::retire(Generation old, const char* reason) {
    // By the old generation's kind, not the set's: a reload may have changed the kind.
    if (!old.leased || old.lease_id.empty()) {
        retire_leaseless(std::move(old), reason);
        return;
    }
    if (!old.lease_alive) return;  // Vault has forgotten it: nothing to revoke
    Retired retired;
    retired.why = reason;
    const std::uint64_t number = old.number;
    retired.gen = std::move(old);
    retired_.emplace(number, std::move(retired));
}

void CredentialSet::retire_leaseless(Generation old, const char* reason) {
    if (old.holders.empty()) return;  // no plugin holds it: nothing to wait for
    Retired r;
    r.why = reason;
    r.reported = true;  // a plugin that closes counts as drained: nothing is left to revoke
    const std::uint64_t number = old.number;
    r.gen = std::move(old);
    retired_.emplace(number, std::move(r));
}

std::string CredentialSet::source_text() const {
    std::string text = source_->path();
    if (source_->kind() == SecretKind::kKv && current_ && current_->version > 0) {
        text += " v" + std::to_string(current_->version);
    }
    return text;
}

void CredentialSet::publish_current() {
    if (!current_ || !publish_) return;
    auto creds = snapshot_for(0);
    if (!creds) return;
    for (ClientId client : publish_(*creds))
        current_->holders.insert(client);
}

std::optional<wire::Credentials> CredentialSet::snapshot_for(ClientId client) {
    if (!current_) return std::nullopt;
    if (client != 0) current_->holders.insert(client);
    wire::Credentials c;
    c.set = name();
    c.generation = current_->number;
    c.username = current_->username;
    c.password = current_->password.clone();
    // A static role's password stops working when Vault rotates it.
    const auto end = current_->leased ? hard_end(*current_) : current_->vault_rotation;
    c.expires_at = end ? std::max<std::int64_t>(0, clock_.wall_at(*end)) : 0;
    return c;
}

void CredentialSet::renew(const TokenSource::Current& token) {
    op_ = Op::kRenew;
    const std::uint64_t token_id = token.id;
    const std::uint64_t number = current_->number;
    call_ = vault_.renew_lease(*token.token, current_->lease_id, current_->ttl,
                               [this, token_id, number](Result<LeaseRenewal> r) {
                                   call_.reset();
                                   op_ = Op::kNone;
                                   vault_.metrics().renewal(name(), r.ok());
                                   if (current_ && current_->number == number) {
                                       renew_denied_ = !r.ok() &&
                                                       r.error().kind == VaultError::Kind::kDenied;
                                       if (!r.ok()) {
                                           if (r.error().kind == VaultError::Kind::kRejected) {
                                               on_renewed(std::move(r));
                                           } else {
                                               failed(r.error(), token_id);
                                           }
                                       } else {
                                           on_renewed(std::move(r));
                                       }
                                   }
                                   step();
                               });
}

void CredentialSet::on_renewed(Result<LeaseRenewal> r) {
    const MonoTime now = clock_.now();
    Generation& g = *current_;
    if (!r.ok()) {
        const std::string& message = r.error().message;
        next_renew_.reset();
        if (message.find("not renewable") != std::string::npos) {
            g.capped = true;
            log::event(log::Level::kInfo, "renew", name(),
                       "set %s: the lease of generation %llu is not renewable; rotating before "
                       "it ends",
                       name().c_str(), ull(g.number));
            return;
        }
        // "lease not found", "lease expired", "invalid lease": nothing left to renew or
        // revoke.
        g.lease_alive = false;
        forced_ = "Vault no longer knows their lease";
        log::event(log::Level::kWarning, "renew", name(),
                   "set %s: Vault refused to renew generation %llu (%s); fetching new "
                   "credentials",
                   name().c_str(), ull(g.number), message.c_str());
        return;
    }
    const LeaseRenewal& renewal = r.value();
    g.lease_end = now + renewal.ttl;
    if (failures_ > 0) {
        log::event(log::Level::kInfo, "vault", name(),
                   "set %s: Vault answers again after %d failed attempts", name().c_str(),
                   failures_);
    }
    failures_ = 0;
    last_error_.clear();
    if (policy::renewal_capped(g.ttl, renewal.ttl) || !renewal.renewable) {
        g.capped = true;
        next_renew_.reset();
        bool token_bound = false;
        const auto at = rotate_time(g, &token_bound);
        log::event(log::Level::kInfo, "renew", name(),
                   "set %s: renewed generation %llu for %llds; its max TTL is reached, new "
                   "credentials in %llds",
                   name().c_str(), ull(g.number), secs(renewal.ttl),
                   at ? std::max<long long>(0, secs(to_duration(*at - now))) : -1LL);
    } else {
        next_renew_ = policy::renew_at(now, renewal.ttl, settings_.rotation_margin, jitter_.next());
        log::event(log::Level::kInfo, "renew", name(), "set %s: renewed generation %llu for %llds",
                   name().c_str(), ull(g.number), secs(renewal.ttl));
    }
}

void CredentialSet::failed(const VaultError& error, std::uint64_t token_id) {
    const MonoTime now = clock_.now();
    if (error.kind == VaultError::Kind::kDenied) tokens_.report_denied(token_id);
    ++failures_;
    std::optional<Duration> left;
    if (current_) {
        if (const auto end = hard_end(*current_); end && *end > now) left = to_duration(*end - now);
    }
    const Duration wait = policy::backoff(failures_, vault_settings_.retry_min,
                                          vault_settings_.retry_max, jitter_.next(), left);
    retry_at_ = now + wait;
    if (failures_ == 1 || !log::same_error(error.message, last_error_)) {
        if (current_) {
            log::event(log::Level::kWarning, "vault", name(),
                       "set %s: %s; retrying in %.1fs, generation %llu stays in use%s",
                       name().c_str(), error.message.c_str(),
                       static_cast<double>(wait.count()) / 1000.0, ull(current_->number),
                       left ? (" for " + std::to_string(secs(*left)) + "s at most").c_str() : "");
        } else {
            log::event(log::Level::kWarning, "vault", name(),
                       "set %s: %s; retrying in %.1fs (no credentials yet)", name().c_str(),
                       error.message.c_str(), static_cast<double>(wait.count()) / 1000.0);
        }
    } else {
        log::debug("set %s: still failing (attempt %d): %s", name().c_str(), failures_,
                   error.message.c_str());
    }
    last_error_ = error.message;
}

void CredentialSet::revoke(Retired& old) {
    const auto token = tokens_.current();
    if (!token) return;
    const std::uint64_t number = old.gen.number;
    const std::uint64_t token_id = token->id;
    old.call = vault_.revoke_lease(*token->token, old.gen.lease_id,
                                   [this, number, token_id](Result<NoContent> r) {
                                       auto it = retired_.find(number);
                                       if (it != retired_.end()) it->second.call.reset();
                                       vault_.metrics().revocation(name(), r.ok());
                                       if (!r.ok() && r.error().kind == VaultError::Kind::kDenied) {
                                           tokens_.report_denied(token_id);
                                       }
                                       on_revoked(number, std::move(r));
                                       step();
                                   });
}

void CredentialSet::on_revoked(std::uint64_t number, const Result<NoContent>& r) {
    auto it = retired_.find(number);
    if (it == retired_.end()) return;
    Retired& old = it->second;
    const MonoTime now = clock_.now();
    if (r.ok()) {
        log::event(log::Level::kInfo, "revoke", name(),
                   "set %s: revoked generation %llu (user %s): %s", name().c_str(), ull(number),
                   old.gen.username.c_str(),
                   old.drained ? "drained" : "deadline reached before it was drained");
        retired_.erase(it);
        return;
    }
    const auto dl = retired_deadline(old);
    if (final_) {
        log::event(log::Level::kWarning, "revoke", name(),
                   "set %s: could not revoke generation %llu (user %s) at shutdown: %s; Vault "
                   "revokes it at its end",
                   name().c_str(), ull(number), old.gen.username.c_str(),
                   r.error().message.c_str());
        retired_.erase(it);
        return;
    }
    if (dl && now >= *dl) {
        log::event(log::Level::kInfo, "revoke", name(),
                   "set %s: could not revoke generation %llu (user %s) before its lease ended "
                   "(%s); Vault revokes it at its end",
                   name().c_str(), ull(number), old.gen.username.c_str(),
                   r.error().message.c_str());
        retired_.erase(it);
        return;
    }
    ++old.failures;
    std::optional<Duration> left;
    if (dl && *dl > now) left = to_duration(*dl - now);
    const Duration wait = policy::backoff(old.failures, vault_settings_.retry_min,
                                          vault_settings_.retry_max, jitter_.next(), left);
    old.retry_at = now + wait;
    if (old.failures == 1) {
        log::event(log::Level::kWarning, "revoke", name(),
                   "set %s: revoking generation %llu failed: %s; retrying in %.1fs", name().c_str(),
                   ull(number), r.error().message.c_str(),
                   static_cast<double>(wait.count()) / 1000.0);
    }
}

void CredentialSet::on_drained(ClientId client, std::uint64_t generation,
                               std::string_view username) {
    if (current_ && current_->number == generation && current_->username == username) {
        if (removed_) {
            // PgBouncer dropped the removed set's database (or closed its servers).
            current_->holders.erase(client);
            step();
            return;
        }
        log::debug("set %s: DRAINED for the current generation %llu ignored", name().c_str(),
                   ull(generation));
        return;
    }
    auto it = retired_.find(generation);
    if (it == retired_.end() || it->second.gen.username != username) {
        log::debug("set %s: DRAINED for generation %llu, which this controller does not hold",
                   name().c_str(), ull(generation));
        return;
    }
    Retired& old = it->second;
    old.gen.holders.erase(client);
    old.reported = true;
    if (!old.drained && old.gen.holders.empty()) {
        old.drained = true;
        log::event(log::Level::kInfo, "drain", name(),
                   "set %s: generation %llu (user %s) drained%s", name().c_str(), ull(generation),
                   old.gen.username.c_str(),
                   old.gen.lease_id.empty() ? " (no lease: nothing to revoke)" : "");
        if (old.gen.lease_id.empty()) retired_.erase(it);
    } else if (!old.drained) {
        log::debug("set %s: generation %llu drained on one plugin, %zu more to go", name().c_str(),
                   ull(generation), old.gen.holders.size());
    }
    step();
}

void CredentialSet::on_login_failed(ClientId, std::uint64_t generation, std::string_view username,
                                    std::string_view sqlstate) {
    if (!current_ || current_->number != generation || current_->username != username) {
        log::debug("set %s: LOGIN_FAILED for generation %llu, not the current one; ignored",
                   name().c_str(), ull(generation));
        return;
    }
    const std::string state(sqlstate);
    // Class 28: invalid authorization (28000) or password (28P01).  Anything else is not
    // cured by new credentials.
    if (state.rfind("28", 0) != 0) {
        log::event(log::Level::kInfo, "login_failed", name(),
                   "set %s: PostgreSQL refused a login with generation %llu, SQLSTATE %s, "
                   "which new credentials would not cure; ignored",
                   name().c_str(), ull(generation), state.c_str());
        return;
    }
    const MonoTime now = clock_.now();
    if (last_login_failed_fetch_ &&
        now - *last_login_failed_fetch_ < policy::kLoginFailedRefetchInterval) {
        log::debug(
                "set %s: LOGIN_FAILED (SQLSTATE %s) within %llds of the last refetch; "
                "ignored",
                name().c_str(), state.c_str(), secs(policy::kLoginFailedRefetchInterval));
        return;
    }
    last_login_failed_fetch_ = now;
    log::event(log::Level::kWarning, "login_failed", name(),
               "set %s: PostgreSQL refused generation %llu (user %s, SQLSTATE %s); fetching "
               "new credentials",
               name().c_str(), ull(generation), current_->username.c_str(), state.c_str());
    forced_ = kLoginRefused;
    if (op_ == Op::kRenew) {
        call_.reset();
        op_ = Op::kNone;
    }
    retry_at_ = now;
    step();
}

void CredentialSet::on_client_closed(ClientId client) {
    if (current_) current_->holders.erase(client);
    bool changed = false;
    for (auto it = retired_.begin(); it != retired_.end();) {
        auto& [number, old] = *it;
        old.gen.holders.erase(client);
        // The other plugins have drained it; the one that left cannot report any more.
        if (old.reported && !old.drained && old.gen.holders.empty()) {
            old.drained = true;
            changed = true;
            log::event(log::Level::kInfo, "drain", name(),
                       "set %s: generation %llu (user %s) drained", name().c_str(), ull(number),
                       old.gen.username.c_str());
        }
        if (old.drained && old.gen.lease_id.empty()) {
            it = retired_.erase(it);  // leaseless: nothing to revoke
        } else {
            ++it;
        }
    }
    if (changed || removed_) step();
}

void CredentialSet::rotate_now() {
    log::event(log::Level::kInfo, "rotate", name(), "set %s: rotation requested", name().c_str());
    forced_ = kRequested;
    if (op_ == Op::kRenew) {
        call_.reset();
        op_ = Op::kNone;
    }
    retry_at_ = clock_.now();
    step();
}

bool CredentialSet::reconfigure(SetSettings next) {
    const bool same_source = next.kind == settings_.kind && next.mount == settings_.mount &&
                             next.role == settings_.role && next.path == settings_.path &&
                             next.username_field == settings_.username_field &&
                             next.password_field == settings_.password_field;
    settings_ = std::move(next);
    if (same_source) {
        // Only timing changed: the next renewal, rotation or read follows the new values.
        log::event(log::Level::kInfo, "reload", name(),
                   "set %s: new settings applied; the credentials stay (they still come from %s)",
                   name().c_str(), source_->path().c_str());
        if (current_ && current_->reread_at && source_->kind() == SecretKind::kKv) {
            current_->reread_at =
                    std::min(*current_->reread_at, clock_.now() + settings_.refresh_interval);
        }
        step();
        return false;
    }
    const std::string was = source_text();
    source_ = make_secret_source(settings_);
    // An answer from the old source must not become the new generation.
    call_.reset();
    op_ = Op::kNone;
    forced_ = kSettingsChanged;
    retry_at_ = clock_.now();
    renew_denied_ = false;
    rotation_wait_since_.reset();
    rotation_stuck_logged_ = false;
    last_login_failed_fetch_.reset();
    log::event(log::Level::kInfo, "reload", name(),
               "set %s: settings changed: credentials now come from %s (%s) instead of %s; "
               "fetching them now, the current generation drains",
               name().c_str(), source_->path().c_str(), secret_kind_name(settings_.kind),
               was.c_str());
    step();
    return true;
}

void CredentialSet::remove(std::function<void()> on_finished) {
    removed_ = true;
    on_finished_ = std::move(on_finished);
    if (op_ == Op::kFetch) {
        call_.reset();
        op_ = Op::kNone;
    }
    forced_ = nullptr;
    // Nothing to revoke for a static role or a KV secret, and no deadline to wait for.
    for (auto it = retired_.begin(); it != retired_.end();) {
        it = it->second.gen.lease_id.empty() ? retired_.erase(it) : std::next(it);
    }
    if (current_ && !current_->leased) {
        log::event(log::Level::kInfo, "reload", name(),
                   "set %s removed: PgBouncer keeps generation %llu (user %s) until its own "
                   "configuration drops the database; nothing to revoke (%s)",
                   name().c_str(), ull(current_->number), current_->username.c_str(),
                   secret_kind_name(source_->kind()));
        current_.reset();
    } else if (current_) {
        log::event(log::Level::kInfo, "reload", name(),
                   "set %s removed: PgBouncer keeps generation %llu (user %s) until its own "
                   "configuration drops the database (the controller cannot tell it); the "
                   "lease is renewed while it may be, never rotated, and revoked once no "
                   "plugin holds it (%zu do now) or at its end",
                   name().c_str(), ull(current_->number), current_->username.c_str(),
                   current_->holders.size());
    } else {
        log::event(log::Level::kInfo, "reload", name(), "set %s removed (it had no credentials)",
                   name().c_str());
    }
    step();
}

void CredentialSet::release_removed(MonoTime now) {
    if (!current_) return;
    const auto end = hard_end(*current_);
    const bool ended = (end && now >= *end) || !current_->lease_alive;
    if (!current_->holders.empty() && !ended) return;
    if (op_ == Op::kRenew) {
        call_.reset();
        op_ = Op::kNone;
    }
    Generation g = std::move(*current_);
    current_.reset();
    next_renew_.reset();
    if (!g.lease_alive || g.lease_id.empty()) return;
    log::event(log::Level::kInfo, "drain", name(),
               "set %s (removed): generation %llu (user %s) %s; revoking it", name().c_str(),
               ull(g.number), g.username.c_str(),
               ended ? "has reached its end" : "is held by no plugin any more");
    Retired r;
    r.why = "its set was removed";
    r.reported = true;
    r.drained = true;
    r.retry_at = now;
    const std::uint64_t number = g.number;
    r.gen = std::move(g);
    retired_.emplace(number, std::move(r));
}

void CredentialSet::revoke_all(std::function<void()> on_finished) {
    removed_ = true;
    final_ = true;
    on_finished_ = std::move(on_finished);
    call_.reset();
    op_ = Op::kNone;
    forced_ = nullptr;
    const MonoTime now = clock_.now();
    if (current_) {
        Generation g = std::move(*current_);
        current_.reset();
        next_renew_.reset();
        g.holders.clear();
        retire(std::move(g), "the controller shuts down");
    }
    for (auto it = retired_.begin(); it != retired_.end();) {
        Retired& r = it->second;
        if (r.gen.lease_id.empty()) {
            it = retired_.erase(it);
            continue;
        }
        r.drained = true;
        r.retry_at = now;
        ++it;
    }
    step();
}

std::size_t CredentialSet::revoke_drained_now(std::vector<std::string>* started) {
    const MonoTime now = clock_.now();
    std::size_t in_use = 0;
    const bool have_token = tokens_.current().has_value();
    for (auto& [number, r] : retired_) {
        if (r.gen.lease_id.empty()) continue;
        if (!r.drained) {
            ++in_use;
            continue;
        }
        if (r.call || !have_token) continue;
        r.retry_at = now;
        revoke(r);
        if (started) {
            started->push_back(name() + " generation " + std::to_string(number) + " (user " +
                               r.gen.username + ")");
        }
    }
    step();
    return in_use;
}

bool CredentialSet::released_by_plugins() const {
    if (current_ && !current_->holders.empty()) return false;
    for (const auto& [number, r] : retired_) {
        if (!r.gen.holders.empty()) return false;
    }
    return true;
}

bool CredentialSet::holds(std::uint64_t generation) const {
    return (current_ && current_->number == generation) || retired_.count(generation) > 0;
}

void CredentialSet::update_state(MonoTime now) {
    if (removed_ && !current_) return;  // nothing left to serve: no state to announce
    State s;
    if (!current_) {
        s = tokens_.current() ? State::kFetching : State::kWaitingForToken;
    } else if (const auto end = hard_end(*current_); end && now >= *end) {
        s = State::kExpired;
    } else if (failures_ > 0) {
        s = State::kDegraded;
    } else if (op_ == Op::kFetch) {
        s = State::kRotating;
    } else {
        s = State::kServing;
    }
    if (s == state_) return;
    const State was = state_;
    state_ = s;
    if (s == State::kExpired) {
        log::event(log::Level::kError, "expire", name(),
                   "set %s: generation %llu (user %s) has reached its end without a "
                   "replacement; PostgreSQL logins with it fail until Vault answers",
                   name().c_str(), ull(current_->number), current_->username.c_str());
    } else if (s == State::kWaitingForToken) {
        log::info("set %s: waiting for a Vault token", name().c_str());
    } else if (s == State::kServing && (was == State::kDegraded || was == State::kExpired)) {
        log::info("set %s: serving again: generation %llu", name().c_str(), ull(current_->number));
    }
}

SetStatus CredentialSet::status() const {
    const MonoTime now = clock_.now();
    SetStatus s;
    s.name = name();
    s.state = state_name(static_cast<int>(state_));
    s.mount = settings_.mount;
    s.role = settings_.role;
    s.kind = secret_kind_name(source_->kind());
    s.source = source_text();
    s.draining = static_cast<std::uint32_t>(retired_.size());
    s.last_error = failures_ > 0 ? last_error_ : std::string();
    // Every generation still tracked, for `pgbvctl leases` (admin_protocol.hpp).
    auto describe = [&](const Generation& g, const char* state) {
        GenerationStatus gs;
        gs.number = g.number;
        gs.username = g.username;
        gs.lease_id = g.lease_id;
        gs.state = state;
        gs.renewable = g.renewable;
        gs.holders = static_cast<std::uint32_t>(g.holders.size());
        if (g.lease_end) {
            gs.lease_ttl = std::max<long long>(0, secs(to_duration(*g.lease_end - now)));
        }
        bool token_bound = false;
        if (const auto d = deadline(g, &token_bound)) gs.deadline = clock_.wall_at(*d);
        return gs;
    };
    if (current_) s.generations.push_back(describe(*current_, "current"));
    for (const auto& [number, r] : retired_) {
        GenerationStatus gs = describe(r.gen, r.drained ? "drained" : "in_use");
        if (const auto end = retired_deadline(r)) gs.deadline = clock_.wall_at(*end);
        gs.revoke_failures = static_cast<std::uint32_t>(r.failures);
        s.generations.push_back(std::move(gs));
    }
    if (next_renew_ && current_ && source_->leased() && current_->renewable && !current_->capped) {
        s.renew_at = clock_.wall_at(*next_renew_);
    }
    if (!current_) return s;
    const Generation& g = *current_;
    s.username = g.username;
    s.generation = g.number;
    s.lease_id = g.lease_id;
    s.renewable = g.renewable;
    s.max_ttl_reached = g.capped && g.renewable;
    if (g.lease_end) s.lease_ttl = std::max<long long>(0, secs(to_duration(*g.lease_end - now)));
    if (!g.leased) {
        if (g.vault_rotation) s.deadline = clock_.wall_at(*g.vault_rotation);
        if (g.reread_at) s.rotate_at = clock_.wall_at(*g.reread_at);
        return s;
    }
    bool token_bound = false;
    if (const auto d = deadline(g, &token_bound)) s.deadline = clock_.wall_at(*d);
    if (const auto at = rotate_time(g, &token_bound)) s.rotate_at = clock_.wall_at(*at);
    return s;
}

}  // namespace pgbv::ctl
