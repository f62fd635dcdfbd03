// The production Clock: the real monotonic and wall clocks, timers as libevent events.

#ifndef PGBV_CONTROLLER_EVENT_CLOCK_HPP
#define PGBV_CONTROLLER_EVENT_CLOCK_HPP

#include <event2/event.h>

#include "controller/clock.hpp"

namespace pgbv::ctl {

class EventClock final : public Clock {
public:
    // REQUIRES: `base` outlives this clock and every timer it makes.
    explicit EventClock(event_base* base) : base_(base) {}

    MonoTime now() const override;
    std::int64_t wall_seconds() const override;
    std::unique_ptr<Timer> new_timer(std::function<void()> fire) override;

private:
    event_base* base_;
};

}  // namespace pgbv::ctl

#endif  // PGBV_CONTROLLER_EVENT_CLOCK_HPP
