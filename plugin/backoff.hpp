// The reconnect delay policy: exponential backoff with jitter between a minimum and a maximum.
#ifndef PGBV_PLUGIN_BACKOFF_HPP
#define PGBV_PLUGIN_BACKOFF_HPP

#include <chrono>
#include <cstdint>
#include <random>

namespace pgbv::plugin {

// Attempt n (counting from 0 since the last reset()) waits a random delay in
// [max(min, c/2), c] where c = min(max, min * 2^n): the first retry comes after exactly
// `min`, the ceiling doubles per failure up to `max`, and the random half spreads retries
// of several plugins apart.  Every delay lies in [min, max].
//
// REQUIRES: 0 < min <= max.
class Backoff {
public:
    Backoff(std::chrono::milliseconds min, std::chrono::milliseconds max, std::uint64_t seed);

    // Returns the delay before the next attempt and counts the attempt.
    std::chrono::milliseconds next();

    // Starts over from `min` (after a connection that worked).
    void reset() noexcept { attempts_ = 0; }

    // Attempts counted since the last reset().
    unsigned attempts() const noexcept { return attempts_; }

private:
    std::chrono::milliseconds min_;
    std::chrono::milliseconds max_;
    unsigned attempts_ = 0;
    std::mt19937_64 random_;
};

}  // namespace pgbv::plugin

#endif  // PGBV_PLUGIN_BACKOFF_HPP
