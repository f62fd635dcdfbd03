// What a credential set needs to know about the Vault token: the interface between the
// token keeper and the sets, so that neither includes the other.

#ifndef PGBV_CONTROLLER_TOKEN_SOURCE_HPP
#define PGBV_CONTROLLER_TOKEN_SOURCE_HPP

#include <cstdint>
#include <optional>
#include <string>

#include "controller/clock.hpp"
#include "pgbv/secret.hpp"

namespace pgbv::ctl {

class TokenSource {
public:
    // The token to use now.  `id` numbers tokens from 1, a new one on every login that
    // produced a different token; leases are remembered by the id that fetched them.
    struct Current {
        std::uint64_t id;
        const Secret* token;  // valid until the next call into the keeper
    };

    // When a token stops working.  `end` nullopt: it never expires.  `final`: the end
    // can no longer move (the token is capped, not renewable, or replaced and no longer
    // renewed); an end that is not final moves with each renewal.
    struct Life {
        std::optional<MonoTime> end;
        bool final = false;
    };

    virtual ~TokenSource() = default;

    // nullopt while there is no usable token (not logged in yet, or expired).
    virtual std::optional<Current> current() const = 0;

    // The life of token `id`, current or past.  A token the keeper no longer remembers is
    // reported as ended at the epoch of the monotonic clock.
    virtual Life life_of(std::uint64_t id) const = 0;

    // Vault answered 403 to a request made with token `id`: the keeper checks the token
    // and logs in again if Vault no longer accepts it.
    virtual void report_denied(std::uint64_t id) = 0;
};

}  // namespace pgbv::ctl

#endif  // PGBV_CONTROLLER_TOKEN_SOURCE_HPP
