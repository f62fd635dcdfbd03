// The controller's seam to time: a clock, one-shot timers and the jitter source.
//
// Everything in the controller that waits (renewals, rotations, backoff, revocations)
// goes through this interface, never through the OS directly, in the manner of LevelDB's
// Env.  Production uses EventClock (libevent timers, the real clocks); tests use a fake
// clock whose timers fire only when the test advances time, so a lease's whole life runs
// in milliseconds and deterministically (with a seeded Jitter).
//
// Thread safety: none; everything runs on the event loop's thread.

#ifndef PGBV_CONTROLLER_CLOCK_HPP
#define PGBV_CONTROLLER_CLOCK_HPP

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>

namespace pgbv::ctl {

using Duration = std::chrono::milliseconds;
// Monotonic time; all scheduling uses it.  Wall time only labels things for people and
// for the wire's expires_at.
using MonoTime = std::chrono::steady_clock::time_point;

// A one-shot timer.  Destroying it cancels it; its callback never runs afterwards.
class Timer {
public:
    virtual ~Timer() = default;

    // Fires the callback once at `when` (at once, from the event loop, if `when` has
    // passed).  Re-arming replaces the previous time.  Never calls back synchronously.
    virtual void arm_at(MonoTime when) = 0;

    // Disarms; harmless when not armed.
    virtual void cancel() = 0;

    virtual bool armed() const = 0;
};

class Clock {
public:
    virtual ~Clock() = default;

    virtual MonoTime now() const = 0;

    // Seconds since the Unix epoch.
    virtual std::int64_t wall_seconds() const = 0;

    // A new, disarmed timer that calls `fire` when it goes off.  `fire` may re-arm or
    // destroy the timer, and arm or destroy any other timer.
    virtual std::unique_ptr<Timer> new_timer(std::function<void()> fire) = 0;

    // The wall-clock second at which monotonic time `t` falls.
    std::int64_t wall_at(MonoTime t) const {
        const auto delta = std::chrono::duration_cast<std::chrono::seconds>(t - now());
        return wall_seconds() + delta.count();
    }
};

// Uniform numbers in [0, 1) for jitter.  Seeded explicitly so tests are reproducible;
// production seeds it from std::random_device.
class Jitter {
public:
    explicit Jitter(std::uint64_t seed) : engine_(seed) {}
    double next() { return std::uniform_real_distribution<double>(0.0, 1.0)(engine_); }

private:
    std::mt19937_64 engine_;
};

inline Duration to_duration(std::chrono::steady_clock::duration d) {
    return std::chrono::duration_cast<Duration>(d);
}

}  // namespace pgbv::ctl

#endif  // PGBV_CONTROLLER_CLOCK_HPP
