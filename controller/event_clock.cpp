// The production Clock: the real clocks, timers as libevent events.

#include "controller/event_clock.hpp"

#include <time.h>

#include <stdexcept>

#include "controller/event_handles.hpp"

namespace pgbv::ctl {
namespace {

class EventTimer final : public Timer {
public:
    EventTimer(event_base* base, std::function<void()> fire) : fire_(std::move(fire)) {
        ev_.reset(evtimer_new(base, &EventTimer::on_fire, this));
        if (!ev_) throw std::runtime_error("cannot create a libevent timer (out of memory?)");
    }

    void arm_at(MonoTime when) override {
        auto wait = when - std::chrono::steady_clock::now();
        if (wait < wait.zero()) wait = wait.zero();
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(wait).count();
        struct timeval tv {};
        tv.tv_sec = static_cast<time_t>(us / 1000000);
        tv.tv_usec = static_cast<suseconds_t>(us % 1000000);
        evtimer_add(ev_.get(), &tv);
    }

    void cancel() override { evtimer_del(ev_.get()); }

    bool armed() const override { return evtimer_pending(ev_.get(), nullptr) != 0; }

private:
    static void on_fire(evutil_socket_t, short, void* arg) {
        // The callback may destroy this timer, and with it fire_: run a copy.
        auto fire = static_cast<EventTimer*>(arg)->fire_;
        fire();
    }

    std::function<void()> fire_;
    UniqueEvent ev_;
};

}  // namespace

MonoTime EventClock::now() const {
    return std::chrono::steady_clock::now();
}

std::int64_t EventClock::wall_seconds() const {
    return static_cast<std::int64_t>(::time(nullptr));
}

std::unique_ptr<Timer> EventClock::new_timer(std::function<void()> fire) {
    return std::make_unique<EventTimer>(base_, std::move(fire));
}

}  // namespace pgbv::ctl
