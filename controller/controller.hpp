// The controller's core: the token keeper and every credential set, wired together, and
// the answers to what plugins report and what the admin asks.
//
// Owns no socket and no event loop: main() gives it a clock, a Vault client and a way to
// publish to plugins, which is what lets the tests run it whole against a fake Vault.
//
// The controller owns the Config it runs with: reload() replaces the credential sets and
// the settings that can change while running, and keeps [vault] and the sockets as they
// were at start (those need a restart).
//
// REQUIRES: every dependency outlives the controller.

#ifndef PGBV_CONTROLLER_CONTROLLER_HPP
#define PGBV_CONTROLLER_CONTROLLER_HPP

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "controller/auth_source.hpp"
#include "controller/clock.hpp"
#include "controller/config.hpp"
#include "controller/credential_set.hpp"
#include "controller/plugin_handler.hpp"
#include "controller/status.hpp"
#include "controller/token_keeper.hpp"
#include "controller/vault_client.hpp"

namespace pgbv::ctl {

// What reload() did, by set name; `restart_needed` names the keys ("[vault] address",
// "[controller] plugin_socket") that changed but apply only after a restart.  `error` is
// set when nothing was changed (the file could not be read or is invalid).
struct ReloadResult {
    std::vector<std::string> added;
    std::vector<std::string> changed;
    std::vector<std::string> removed;
    std::vector<std::string> restart_needed;
    std::string error;
};

class Controller final : public PluginHandler {
public:
    Controller(Config config, Clock& clock, Jitter& jitter, VaultClient& vault,
               const AuthSource& auth);
    ~Controller() override;

    // Where new credentials go (the plugin server's broadcast).  Set before start().
    void set_publish(CredentialSet::Publish publish) { publish_ = std::move(publish); }

    // How many plugins are connected, for status.
    void set_client_count(std::function<std::uint32_t()> count) {
        client_count_ = std::move(count);
    }

    // Logs in and starts every set.
    void start();

    // PluginHandler.
    std::vector<wire::Credentials> snapshot(ClientId client) override;
    void drained(ClientId client, const wire::Drained& message) override;
    void login_failed(ClientId client, const wire::LoginFailed& message) override;
    void client_closed(ClientId client) override;

    Status status() const;

    // Fetches new credentials for `set` now; returns an error message, or "" on success.
    std::string rotate(std::string_view set);

    // Applies `next` (a checked configuration): sets added start fetching, removed ones
    // stop (their leases revoked once drained, at once if no plugin holds them), changed
    // ones are replaced, unchanged ones are not touched.  [vault] and socket changes are
    // only reported (restart_needed).  Logs what it did.
    ReloadResult reload(Config next);

    // Revokes now every old generation that every holder reported drained, without
    // waiting for a retry's backoff.  Returns a one-line summary; sets *error (when given)
    // if nothing could be revoked because there is no usable Vault token.
    std::string revoke_drained(std::string* error = nullptr);

    // Shutting down with revoke_on_shutdown: waits (at most `timeout`) until no plugin is
    // connected or every plugin reported every generation it holds drained, then revokes
    // every lease, then calls `done` (from the event loop).
    void shutdown_revoking(Duration timeout, std::function<void()> done);

    // The configuration in force (after reloads).
    const Config& config() const { return config_; }

    TokenKeeper& token_keeper() { return *keeper_; }
    CredentialSet* find(std::string_view set);
    const std::vector<std::unique_ptr<CredentialSet>>& sets() const { return sets_; }

private:
    std::unique_ptr<CredentialSet> make_set(const SetSettings& settings);
    // Destroys removed sets that are done; ends the shutdown once every set is done.
    void reap();
    // Shutdown: PgBouncer has closed its servers (or the wait is over): revoke.
    void check_shutdown_wait();
    void revoke_everything(const char* why);
    void revoke_next_set();

    Config config_;
    Clock& clock_;
    Jitter& jitter_;
    VaultClient& vault_;
    MonoTime started_at_;
    std::unique_ptr<TokenKeeper> keeper_;
    std::vector<std::unique_ptr<CredentialSet>> sets_;
    CredentialSet::Publish publish_;
    std::function<std::uint32_t()> client_count_;
    // Sets removed by a reload, until their last lease is revoked or ended; they still
    // take DRAINED reports and disconnects, never appear in status or snapshots.
    std::vector<std::unique_ptr<CredentialSet>> removed_;
    // Sets whose leases the shutdown has still to revoke, and the one revoking now.
    std::vector<CredentialSet*> revoke_queue_;
    CredentialSet* revoking_ = nullptr;
    std::unique_ptr<Timer> reap_timer_;
    // The last generation number of each removed set's name, for a set added back later.
    std::map<std::string, std::uint64_t> removed_numbers_;
    bool started_ = false;
    // Shutdown with revoke_on_shutdown.
    enum class Shutdown { kNo, kWaiting, kRevoking, kDone };
    Shutdown shutdown_ = Shutdown::kNo;
    std::function<void()> shutdown_done_;
    std::unique_ptr<Timer> shutdown_timer_;
};

// Re-reads the configuration file at `path` (load_config) and applies it to `controller`.
// A file that cannot be read or is invalid changes nothing: .error says why (logged).
ReloadResult reload_from_file(Controller& controller, const std::string& path,
                              const Getenv& getenv);

// "ok": every set serves credentials before their end, Vault answers and the token is
// valid.  "degraded": every set still serves, but Vault or the token is failing, or a set
// is retrying.  "failing": some set has no working credentials.
std::string overall_health(const Status& status);

}  // namespace pgbv::ctl

#endif  // PGBV_CONTROLLER_CONTROLLER_HPP
