// A Clock for tests: time stands still until the test advances it, and timers fire then,
// in time order, so a lease's whole life runs in milliseconds and deterministically.

#ifndef PGBV_TESTS_CONTROLLER_FAKE_CLOCK_HPP
#define PGBV_TESTS_CONTROLLER_FAKE_CLOCK_HPP

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>

#include "controller/clock.hpp"

namespace pgbv::ctl::testing {

class FakeClock final : public Clock {
public:
    explicit FakeClock(std::int64_t wall_start = 1700000000) : wall_start_(wall_start) {}

    MonoTime now() const override { return now_; }
    std::int64_t wall_seconds() const override {
        return wall_start_ +
               std::chrono::duration_cast<std::chrono::seconds>(now_ - MonoTime{}).count();
    }
    std::unique_ptr<Timer> new_timer(std::function<void()> fire) override;

    // Moves time forward by `d`, firing every timer that falls due on the way (including
    // timers armed by those callbacks), each at its own time.
    void advance(Duration d);

    // Fires whatever is due now (zero-delay work such as fake HTTP answers).
    void settle() { advance(Duration::zero()); }

    // Advances in `step`s until `done()` or `limit` has passed; returns done().
    bool advance_until(const std::function<bool()>& done, Duration limit,
                       Duration step = std::chrono::milliseconds(100));

    // Time since the fake epoch.
    Duration elapsed() const { return to_duration(now_ - MonoTime{}); }

    std::size_t armed_timers() const;

private:
    friend class FakeTimer;
    struct Entry {
        std::optional<MonoTime> when;
        std::uint64_t order = 0;
        std::function<void()> fire;
    };

    MonoTime now_{};
    std::int64_t wall_start_;
    std::map<std::uint64_t, Entry> timers_;
    std::uint64_t next_id_ = 0;
    std::uint64_t next_order_ = 0;
};

}  // namespace pgbv::ctl::testing

#endif  // PGBV_TESTS_CONTROLLER_FAKE_CLOCK_HPP
