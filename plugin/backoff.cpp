// The reconnect delay policy: exponential backoff with jitter between a minimum and a maximum.
#include "plugin/backoff.hpp"

#include <algorithm>

namespace pgbv::plugin {

Backoff::Backoff(std::chrono::milliseconds min, std::chrono::milliseconds max, std::uint64_t seed)
    : min_(min), max_(std::max(min, max)), random_(seed) {}

std::chrono::milliseconds Backoff::next() {
    // Doubling stops at max; capping the exponent keeps the shift defined.
    std::int64_t ceiling = min_.count();
    for (unsigned i = 0; i < attempts_ && ceiling < max_.count(); ++i)
        ceiling *= 2;
    ceiling = std::min<std::int64_t>(ceiling, max_.count());
    const std::int64_t floor = std::max<std::int64_t>(min_.count(), ceiling / 2);
    std::uniform_int_distribution<std::int64_t> jitter(floor, ceiling);
    if (attempts_ < 64) ++attempts_;
    return std::chrono::milliseconds(jitter(random_));
}

}  // namespace pgbv::plugin
