// A Clock for tests whose time moves only when the test says so.

#include "fake_clock.hpp"

#include <stdexcept>

namespace pgbv::ctl::testing {

class FakeTimer final : public Timer {
public:
    FakeTimer(FakeClock* clock, std::uint64_t id) : clock_(clock), id_(id) {}
    ~FakeTimer() override { clock_->timers_.erase(id_); }

    void arm_at(MonoTime when) override {
        auto& e = clock_->timers_[id_];
        e.when = when;
        e.order = ++clock_->next_order_;
    }
    void cancel() override { clock_->timers_[id_].when.reset(); }
    bool armed() const override {
        auto it = clock_->timers_.find(id_);
        return it != clock_->timers_.end() && it->second.when.has_value();
    }

private:
    FakeClock* clock_;
    std::uint64_t id_;
};

std::unique_ptr<Timer> FakeClock::new_timer(std::function<void()> fire) {
    const std::uint64_t id = ++next_id_;
    timers_[id].fire = std::move(fire);
    return std::make_unique<FakeTimer>(this, id);
}

void FakeClock::advance(Duration d) {
    const MonoTime target = now_ + d;
    // A controller that keeps re-arming at the same instant is stuck in a hot loop: fail
    // the test instead of spinning until memory runs out.
    constexpr int kMaxFiresAtOneInstant = 100000;
    int fires_here = 0;
    MonoTime last_fire = now_;
    for (;;) {
        std::uint64_t best = 0;
        const Entry* best_entry = nullptr;
        for (const auto& [id, e] : timers_) {
            if (!e.when || *e.when > target) continue;
            if (best_entry == nullptr || *e.when < *best_entry->when ||
                (*e.when == *best_entry->when && e.order < best_entry->order)) {
                best = id;
                best_entry = &e;
            }
        }
        if (best_entry == nullptr) break;
        Entry& e = timers_[best];
        if (*e.when > now_) now_ = *e.when;
        fires_here = now_ == last_fire ? fires_here + 1 : 0;
        last_fire = now_;
        if (fires_here > kMaxFiresAtOneInstant) {
            throw std::runtime_error(
                    "fake clock: timers keep firing at the same instant "
                    "(hot loop in the code under test)");
        }
        e.when.reset();
        auto fire = e.fire;  // the callback may destroy its timer
        fire();
    }
    now_ = target;
}

bool FakeClock::advance_until(const std::function<bool()>& done, Duration limit, Duration step) {
    const MonoTime end = now_ + limit;
    settle();
    while (!done() && now_ < end)
        advance(std::min(step, to_duration(end - now_)));
    return done();
}

std::size_t FakeClock::armed_timers() const {
    std::size_t n = 0;
    for (const auto& [id, e] : timers_)
        n += e.when ? 1 : 0;
    return n;
}

}  // namespace pgbv::ctl::testing
