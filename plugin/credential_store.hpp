// The plugin's credential sets: current credentials with plugin-local generations.
#ifndef PGBV_PLUGIN_CREDENTIAL_STORE_HPP
#define PGBV_PLUGIN_CREDENTIAL_STORE_HPP

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "pgbv/secret.hpp"
#include "pgbv/wire_codec.hpp"

namespace pgbv::plugin {

// One set's current credentials.
struct CurrentCredentials {
    std::uint64_t generation = 0;             // local: what PgBouncer sees
    std::uint64_t controller_generation = 0;  // the controller's, for reports
    std::string username;
    Secret password;
    std::int64_t expires_at = 0;      // seconds since the epoch, 0 if unknown
    std::int64_t received_at_us = 0;  // when this local generation arrived
};

// What a report about a local generation must tell the controller.
struct Origin {
    std::uint64_t controller_generation = 0;
    std::string username;
    bool current = false;  // the set's current generation
};

// Maps set names to their current credentials.
//
// Local generations start at 1 per set and increase by one each time the set's username
// or password really changes; a CREDENTIALS message with the same username and password
// (a reconnect's snapshot, a restarted controller) keeps the generation and only updates
// the controller generation and expiry.  For each replaced generation the store keeps
// the controller generation and username (never the password), so that DRAINED and
// LOGIN_FAILED about old generations can be reported; at most `max_history_per_set` of
// them per set, the oldest forgotten first.  Replaced and cleared passwords are wiped.
//
// Not thread-safe; lives on the host's event-loop thread.
class CredentialStore {
public:
    explicit CredentialStore(std::size_t max_history_per_set = 256)
        : max_history_(max_history_per_set) {}

    enum class Applied { kNewGeneration, kUnchanged };

    // Applies a CREDENTIALS message received at `now_us` (microseconds since the epoch),
    // taking its password.  REQUIRES: `c` passed wire::validation_error().
    Applied apply(wire::Credentials&& c, std::int64_t now_us);

    // The set's current credentials, or nullptr.  Valid until the next apply()/clear().
    const CurrentCredentials* find(std::string_view set) const;

    // The controller generation and username behind local `generation` of `set`
    // (current or remembered), or nullopt if the store never had or forgot it.
    std::optional<Origin> origin(std::string_view set, std::uint64_t generation) const;

    // Forgets an old generation once it has been reported drained.  The current
    // generation is never forgotten.
    void forget(std::string_view set, std::uint64_t generation);

    // Number of sets with credentials.
    std::size_t size() const noexcept { return sets_.size(); }

    // Wipes and forgets everything.
    void clear() noexcept { sets_.clear(); }

private:
    struct OldGeneration {
        std::uint64_t controller_generation = 0;
        std::string username;
    };
    struct Set {
        CurrentCredentials current;
        std::map<std::uint64_t, OldGeneration> history;  // by local generation
    };

    std::size_t max_history_;
    std::map<std::string, Set, std::less<>> sets_;
};

}  // namespace pgbv::plugin

#endif  // PGBV_PLUGIN_CREDENTIAL_STORE_HPP
