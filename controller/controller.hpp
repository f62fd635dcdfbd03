// The controller's core: the token keeper and every credential set, wired together, and
// the answers to what plugins report and what the admin asks.
//
// Owns no socket and no event loop: main() gives it a clock, a Vault client and a way to
// publish to plugins, which is what lets the tests run it whole against a fake Vault.
//
// REQUIRES: every dependency outlives the controller.

#ifndef PGBV_CONTROLLER_CONTROLLER_HPP
#define PGBV_CONTROLLER_CONTROLLER_HPP

#include <functional>
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

class Controller final : public PluginHandler {
public:
    Controller(const Config& config, Clock& clock, Jitter& jitter, VaultClient& vault,
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

    TokenKeeper& token_keeper() { return *keeper_; }
    CredentialSet* find(std::string_view set);
    const std::vector<std::unique_ptr<CredentialSet>>& sets() const { return sets_; }

private:
    const Config& config_;
    Clock& clock_;
    VaultClient& vault_;
    MonoTime started_at_;
    std::int64_t started_wall_ = 0;
    std::unique_ptr<TokenKeeper> keeper_;
    std::vector<std::unique_ptr<CredentialSet>> sets_;
    CredentialSet::Publish publish_;
    std::function<std::uint32_t()> client_count_;
};

// "ok": every set serves credentials before their end, Vault answers and the token is
// valid.  "degraded": every set still serves, but Vault or the token is failing, or a set
// is retrying.  "failing": some set has no working credentials.
std::string overall_health(const Status& status);

}  // namespace pgbv::ctl

#endif  // PGBV_CONTROLLER_CONTROLLER_HPP
