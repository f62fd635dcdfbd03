// The bounded queue of DRAINED/LOGIN_FAILED reports waiting for a controller connection.
#include "plugin/report_queue.hpp"

#include <utility>

namespace pgbv::plugin {

bool ReportQueue::push_back(wire::Message report) {
    bool dropped = false;
    if (reports_.size() >= capacity_) {
        reports_.pop_front();
        ++dropped_;
        dropped = true;
    }
    reports_.push_back(std::move(report));
    return dropped;
}

std::size_t ReportQueue::push_front(std::deque<wire::Message> reports) {
    for (auto it = reports.rbegin(); it != reports.rend(); ++it) {
        reports_.push_front(std::move(*it));
    }
    std::size_t dropped = 0;
    while (reports_.size() > capacity_) {
        reports_.pop_front();
        ++dropped;
    }
    dropped_ += dropped;
    return dropped;
}

std::deque<wire::Message> ReportQueue::take_all() {
    return std::exchange(reports_, {});
}

std::uint64_t ReportQueue::take_dropped() noexcept {
    return std::exchange(dropped_, 0);
}

}  // namespace pgbv::plugin
