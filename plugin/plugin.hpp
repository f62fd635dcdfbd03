// The credential plugin behind the C ABI: the store, the controller client and the host.
#ifndef PGBV_PLUGIN_PLUGIN_HPP
#define PGBV_PLUGIN_PLUGIN_HPP

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "pgbv/plugin_abi.h"
#include "plugin/controller_client.hpp"
#include "plugin/credential_store.hpp"
#include "plugin/logger.hpp"
#include "plugin/options.hpp"

namespace pgbv::plugin {

// Implements the semantics of pgbv_plugin_api (plugin_abi.h) in C++; plugin_abi.cpp only
// adapts the C calls and catches exceptions.
//
// Credentials from the controller go into the store; when a set's local generation
// changes, host->credentials_changed(set) is called after that CREDENTIALS frame has been
// applied, from the client's read callback, never from a pgbv_plugin_api function.  The
// host may call get_credentials() and report_*() from inside credentials_changed().
//
// Not thread-safe: everything runs on the host's event-loop thread.
class Plugin final : private ClientHandler {
public:
    // Checks `host`, parses `options` (credential_plugin_options) and schedules the
    // first connection to the controller.  Returns nullptr with a one-line reason in
    // *error on failure.  May throw std::bad_alloc.
    static std::unique_ptr<Plugin> create(const pgbv_host_api* host, std::string_view options,
                                          std::string* error);

    ~Plugin();
    Plugin(const Plugin&) = delete;
    Plugin& operator=(const Plugin&) = delete;

    // pgbv_plugin_api.get_credentials: PGBV_OK, PGBV_NOT_FOUND (empty strings, generation
    // 0) or PGBV_ERROR (NULL argument, or a set name no set can have).
    int get_credentials(const char* set, pgbv_credentials* out) const noexcept;

    // pgbv_plugin_api.report_drained: sends DRAINED with the controller generation and
    // username behind the local generation.  Ignored (logged) for a generation that is
    // current or unknown.
    void report_drained(const char* set, std::uint64_t generation);

    // pgbv_plugin_api.report_login_failed: sends LOGIN_FAILED.  Ignored (logged) for an
    // unknown generation or a malformed SQLSTATE.
    void report_login_failed(const char* set, std::uint64_t generation, const char* sqlstate);

    // pgbv_plugin_api.shutdown: closes the connection, cancels every event and wipes
    // every secret.  Idempotent.
    void shutdown();

    // The host's log, for errors caught at the ABI boundary.
    const Logger& logger() const noexcept { return log_; }

    const CredentialStore& store() const noexcept { return store_; }
    const ControllerClient& client() const noexcept { return client_; }

    // Only for create(); the key keeps construction there.
    struct Key {
        explicit Key() = default;
    };
    Plugin(Key, const pgbv_host_api& host, Options options);

private:
    struct Host {
        void* data;
        void (*log)(void*, int, const char*);
        void (*credentials_changed)(void*, const char*);
    };

    void on_credentials(wire::Credentials&& credentials) override;

    Host host_;
    Logger log_;
    Options options_;
    CredentialStore store_;
    ControllerClient client_;
    bool shut_down_ = false;
};

}  // namespace pgbv::plugin

#endif  // PGBV_PLUGIN_PLUGIN_HPP
