// The bounded queue of DRAINED/LOGIN_FAILED reports waiting for a controller connection.
#ifndef PGBV_PLUGIN_REPORT_QUEUE_HPP
#define PGBV_PLUGIN_REPORT_QUEUE_HPP

#include <cstddef>
#include <cstdint>
#include <deque>

#include "pgbv/wire_codec.hpp"

namespace pgbv::plugin {

// Reports (wire::Drained or wire::LoginFailed) kept in order while the controller cannot
// take them.  Holds at most `capacity` reports; beyond that the oldest are dropped, so
// the newest news about the credentials wins.
class ReportQueue {
public:
    // REQUIRES: capacity > 0.
    explicit ReportQueue(std::size_t capacity) : capacity_(capacity) {}

    // Appends `report` as the newest.  Returns true if the oldest report was dropped to
    // make room.
    bool push_back(wire::Message report);

    // Puts `reports` (oldest first) before everything queued: reports that were on their
    // way when a connection broke.  Returns how many of the oldest were dropped.
    std::size_t push_front(std::deque<wire::Message> reports);

    // Removes and returns every report, oldest first.
    std::deque<wire::Message> take_all();

    std::size_t size() const noexcept { return reports_.size(); }
    bool empty() const noexcept { return reports_.empty(); }
    std::size_t capacity() const noexcept { return capacity_; }

    // Reports dropped since the last take_dropped(); resets the count.
    std::uint64_t take_dropped() noexcept;

private:
    std::size_t capacity_;
    std::deque<wire::Message> reports_;
    std::uint64_t dropped_ = 0;
};

}  // namespace pgbv::plugin

#endif  // PGBV_PLUGIN_REPORT_QUEUE_HPP
