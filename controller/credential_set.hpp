// One credential set: the life of its database credentials from Vault, generation by
// generation.  Where they come from is the set's SecretSource (secret_source.hpp): a
// dynamic role (a lease per user, everything below), a static role or a KV v2 secret
// (no lease: see "leaseless" at the end).
//
//   fetch     GET <mount>/creds/<role> with the current token: generation N, pushed to
//             every plugin (the Publish callback).
//   renew     PUT sys/leases/renew at about two thirds of the TTL (lease_policy.hpp); a
//             capped renewal fixes the lease's end.
//   rotate    fetch generation N+1 at deadline - margin, where the deadline is the
//             earliest of the lease's final end and the final end of the token that
//             fetched it; also at once when the token is replaced, when PgBouncer reports
//             LOGIN_FAILED for the current generation (at most every
//             policy::kLoginFailedRefetchInterval), when the lease is gone, and on request.
//   drain     the old generation is kept until every plugin that received it reports
//             DRAINED, then its lease is revoked (PUT sys/leases/revoke); if that never
//             happens it is revoked at its deadline anyway.
//   failures  Vault errors retry with backoff (bounded by the time left); the current
//             credentials keep being served meanwhile.  One log line per state change and
//             per event, not per retry.
//   leaseless a static role is read again right after Vault's scheduled rotation (its ttl
//             plus a lag; while the old password still shows, again every second for a
//             while: lease_policy.hpp), a KV secret every refresh_interval; both also on
//             LOGIN_FAILED (same limit as above) and on request.  A read that shows the
//             same user and password changes nothing; different ones make generation N+1
//             (a static role keeps its user: only the password differs).  Old generations
//             still drain, but there is nothing to revoke and the token's end does not
//             concern them.
//   reload    reconfigure(): new settings; when where the secret comes from changed (kind,
//             mount, role, path, fields) new credentials are fetched at once and the old
//             generation drains as after a rotation; a timing-only change (margin,
//             refresh_interval) applies from the next schedule.  remove(): no more fetches;
//             the current generation stays with PgBouncer (renewed while it may be) and is
//             revoked once no plugin holds it (DRAINED or disconnected) or at its deadline.
//   shutdown  revoke_all(): stop, and revoke every lease now, drained or not.
//
// All work happens in step(), run by one timer and after every event; it does whatever
// is due and re-arms the timer for the next thing that will be due.  At most one Vault
// request for the current generation is in flight, plus one revocation per old one.
//
// REQUIRES: every dependency outlives the set.

#ifndef PGBV_CONTROLLER_CREDENTIAL_SET_HPP
#define PGBV_CONTROLLER_CREDENTIAL_SET_HPP

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "controller/clock.hpp"
#include "controller/config.hpp"
#include "controller/secret_source.hpp"
#include "controller/status.hpp"
#include "controller/token_source.hpp"
#include "controller/vault_client.hpp"
#include "pgbv/wire_codec.hpp"

namespace pgbv::ctl {

// Identifies one plugin connection (never reused within a process).
using ClientId = std::uint64_t;

class CredentialSet {
public:
    // Sends credentials to every plugin ready for them; returns the clients that got them.
    using Publish = std::function<std::vector<ClientId>(const wire::Credentials&)>;

    struct Deps {
        Clock& clock;
        Jitter& jitter;
        VaultClient& vault;
        TokenSource& tokens;
        const VaultSettings& vault_settings;
    };

    CredentialSet(Deps deps, SetSettings settings, Publish publish);
    ~CredentialSet();
    CredentialSet(const CredentialSet&) = delete;
    CredentialSet& operator=(const CredentialSet&) = delete;

    // Starts fetching (as soon as there is a token).
    void start();

    // The token changed, ended or was extended: re-evaluate.
    void on_token_update();

    // A plugin reports that no server uses `generation` any more.
    void on_drained(ClientId client, std::uint64_t generation, std::string_view username);

    // A plugin reports that PostgreSQL refused a login with `generation`.
    void on_login_failed(ClientId client, std::uint64_t generation, std::string_view username,
                         std::string_view sqlstate);

    // A plugin connection closed: it will report nothing more.
    void on_client_closed(ClientId client);

    // The current credentials for a plugin's snapshot (nullopt if none yet); `client`
    // becomes one of the holders whose DRAINED the set will wait for (0: nobody, plugin
    // ids start at 1).
    std::optional<wire::Credentials> snapshot_for(ClientId client);

    // Fetches new credentials now (admin request).
    void rotate_now();

    // New settings for this set (same name); returns true when they change where the
    // credentials come from, so that new ones are fetched now.
    bool reconfigure(SetSettings settings);

    // The set was removed from the configuration: fetch nothing more, revoke what is left
    // once no plugin holds it.  finished() once nothing is left; `on_finished` is called
    // then (from step(), so the owner must not destroy the set inside it).
    void remove(std::function<void()> on_finished);

    // Shutdown: stop and revoke every lease now (no retry on failure); on_finished as
    // for remove().
    void revoke_all(std::function<void()> on_finished);

    bool finished() const { return removed_ && !current_ && retired_.empty() && !call_; }

    // Revokes now every old generation that every holder reported drained (skipping a
    // retry's wait); appends "<set> generation <n> (user <u>)" for each to `started`.
    // Returns how many old generations with a lease are still in use (not drained).
    std::size_t revoke_drained_now(std::vector<std::string>* started);

    // No plugin holds any generation of this set any more (all DRAINED or disconnected).
    bool released_by_plugins() const;

    // Whether `generation` is one this set still tracks.
    bool holds(std::uint64_t generation) const;

    // Generation numbers continue from `last` (a set removed and added again keeps
    // numbering up, as the protocol wants within one process).  Before start().
    void continue_numbering(std::uint64_t last) { last_number_ = std::max(last_number_, last); }
    std::uint64_t last_generation() const { return last_number_; }
    const SetSettings& settings() const { return settings_; }

    const std::string& name() const { return settings_.name; }
    SetStatus status() const;

    // For tests and status.
    bool has_credentials() const { return current_.has_value(); }
    std::uint64_t generation() const { return current_ ? current_->number : 0; }
    std::string username() const { return current_ ? current_->username : std::string(); }
    std::size_t draining() const { return retired_.size(); }

private:
    struct Generation {
        std::uint64_t number = 0;
        bool leased = true;  // from a source with leases (its kind when fetched)
        std::string username;
        Secret password;
        std::string lease_id;
        bool renewable = false;
        Duration ttl{0};                    // granted at fetch: the renewal increment
        std::optional<MonoTime> lease_end;  // moves with renewals; nullopt: no TTL
        bool capped = false;                // lease_end is final
        bool lease_alive = true;            // false once Vault says the lease is gone
        std::uint64_t token_id = 0;
        std::set<ClientId> holders;
        // Leaseless sources only.
        std::optional<MonoTime> reread_at;       // when to read the secret again
        std::optional<MonoTime> vault_rotation;  // static: when Vault rotates it next
        std::int64_t version = 0;                // kv: the secret's version
    };
    struct Retired {
        Generation gen;
        bool reported = false;  // some plugin reported it drained
        bool drained = false;   // reported, and no holder is left
        const char* why = "";   // why it was replaced, for the log
        VaultClient::Pending call;
        int failures = 0;
        MonoTime retry_at{};
    };
    enum class State { kWaitingForToken, kFetching, kServing, kRotating, kDegraded, kExpired };
    enum class Op { kNone, kFetch, kRenew };

    void step();
    void step_retired(MonoTime now);
    const char* fetch_reason(MonoTime now, std::uint64_t token_id) const;
    bool renew_due(MonoTime now) const;
    void fetch(const TokenSource::Current& token, const char* reason);
    void renew(const TokenSource::Current& token);
    void revoke(Retired& old);
    void on_fetched(Result<SecretSource::Fetched> result, std::uint64_t token_id,
                    const char* reason);
    // A leaseless read that shows the credentials already current.
    void on_unchanged(const SecretSource::Fetched& read, const char* reason, MonoTime now);
    // Leaseless: when to read again after `read`, at `now`.
    MonoTime next_read(const SecretSource::Fetched& read, MonoTime now) const;
    void retire_leaseless(Generation old, const char* reason);
    // Keeps `old` until drained (and revokes its lease then), whatever its kind.
    void retire(Generation old, const char* reason);
    // A removed set: hands its current generation to the revocation path once no plugin
    // holds it or it has ended.
    void release_removed(MonoTime now);
    // The current secret as status shows it: "database/static-creds/app", "secret/data/x v3".
    std::string source_text() const;
    void on_renewed(Result<LeaseRenewal> result);
    void on_revoked(std::uint64_t number, const Result<NoContent>& result);
    void failed(const VaultError& error, std::uint64_t token_id);
    void publish_current();
    void arm(MonoTime now);
    void update_state(MonoTime now);

    // When `g` stops working if nothing else happens: its lease's current end or its
    // token's end.
    std::optional<MonoTime> hard_end(const Generation& g) const;
    // When `g` stops working for sure; `token_bound` says the token's end decides.
    std::optional<MonoTime> deadline(const Generation& g, bool* token_bound) const;
    std::optional<MonoTime> rotate_time(const Generation& g, bool* token_bound) const;
    std::optional<MonoTime> retired_deadline(const Retired& r) const;

    Clock& clock_;
    Jitter& jitter_;
    VaultClient& vault_;
    TokenSource& tokens_;
    const VaultSettings& vault_settings_;
    SetSettings settings_;
    Publish publish_;
    std::unique_ptr<SecretSource> source_;
    std::unique_ptr<Timer> timer_;

    std::optional<Generation> current_;
    std::map<std::uint64_t, Retired> retired_;
    std::uint64_t last_number_ = 0;

    VaultClient::Pending call_;
    Op op_ = Op::kNone;
    std::optional<MonoTime> next_renew_;
    const char* forced_ = nullptr;  // a reason to fetch now
    std::optional<MonoTime> last_login_failed_fetch_;
    // Static role: since when reads have found Vault's due rotation not done yet.
    std::optional<MonoTime> rotation_wait_since_;
    bool rotation_stuck_logged_ = false;
    int failures_ = 0;
    bool renew_denied_ = false;  // the last renewal got a 403 (e.g. no policy for it)
    MonoTime retry_at_{};
    std::string last_error_;
    State state_ = State::kWaitingForToken;
    bool started_ = false;
    bool removed_ = false;  // remove() or revoke_all(): no more fetches
    bool final_ = false;    // revoke_all(): revoke everything once, no retries
    std::function<void()> on_finished_;
};

}  // namespace pgbv::ctl

#endif  // PGBV_CONTROLLER_CREDENTIAL_SET_HPP
