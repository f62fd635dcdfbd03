// Tests of the reconnect backoff and the pending report queue.
#include "plugin/backoff.hpp"

#include <gtest/gtest.h>

#include "plugin/report_queue.hpp"

namespace pgbv::plugin {
namespace {

using std::chrono::milliseconds;

TEST(Backoff, StartsAtMinGrowsToMaxWithJitterInside) {
    for (std::uint64_t seed = 0; seed < 20; ++seed) {
        Backoff b(milliseconds(100), milliseconds(5000), seed);
        EXPECT_EQ(b.next(), milliseconds(100)) << "the first retry waits exactly min";
        std::int64_t ceiling = 100;
        for (int i = 1; i < 20; ++i) {
            ceiling = std::min<std::int64_t>(ceiling * 2, 5000);
            const auto d = b.next().count();
            EXPECT_GE(d, std::max<std::int64_t>(100, ceiling / 2)) << i;
            EXPECT_LE(d, ceiling) << i;
        }
        b.reset();
        EXPECT_EQ(b.attempts(), 0u);
        EXPECT_EQ(b.next(), milliseconds(100));
    }
}

TEST(Backoff, JitterSpreadsDelays) {
    Backoff a(milliseconds(100), milliseconds(5000), 1);
    Backoff b(milliseconds(100), milliseconds(5000), 2);
    bool differ = false;
    for (int i = 0; i < 10; ++i)
        differ |= a.next() != b.next();
    EXPECT_TRUE(differ);
}

TEST(Backoff, StaysWithinBoundsForever) {
    Backoff b(milliseconds(1), milliseconds(3), 7);
    for (int i = 0; i < 1000; ++i) {
        const auto d = b.next();
        EXPECT_GE(d, milliseconds(1));
        EXPECT_LE(d, milliseconds(3));
    }
}

TEST(Backoff, MinEqualsMax) {
    Backoff b(milliseconds(50), milliseconds(50), 3);
    for (int i = 0; i < 10; ++i)
        EXPECT_EQ(b.next(), milliseconds(50));
}

wire::Message drained(std::uint64_t g) {
    return wire::Drained{"app", g, "u"};
}
std::uint64_t generation_of(const wire::Message& m) {
    return std::get<wire::Drained>(m).generation;
}

TEST(ReportQueue, KeepsOrderAndDropsTheOldest) {
    ReportQueue q(3);
    EXPECT_FALSE(q.push_back(drained(1)));
    EXPECT_FALSE(q.push_back(drained(2)));
    EXPECT_FALSE(q.push_back(drained(3)));
    EXPECT_TRUE(q.push_back(drained(4)));
    EXPECT_TRUE(q.push_back(drained(5)));
    EXPECT_EQ(q.size(), 3u);
    EXPECT_EQ(q.take_dropped(), 2u);
    EXPECT_EQ(q.take_dropped(), 0u);
    auto all = q.take_all();
    ASSERT_EQ(all.size(), 3u);
    EXPECT_EQ(generation_of(all[0]), 3u);
    EXPECT_EQ(generation_of(all[2]), 5u);
    EXPECT_TRUE(q.empty());
}

TEST(ReportQueue, PushFrontPutsUnsentReportsFirst) {
    ReportQueue q(4);
    q.push_back(drained(10));
    std::deque<wire::Message> unsent;
    unsent.push_back(drained(1));
    unsent.push_back(drained(2));
    EXPECT_EQ(q.push_front(std::move(unsent)), 0u);
    auto all = q.take_all();
    ASSERT_EQ(all.size(), 3u);
    EXPECT_EQ(generation_of(all[0]), 1u);
    EXPECT_EQ(generation_of(all[1]), 2u);
    EXPECT_EQ(generation_of(all[2]), 10u);

    ReportQueue small(2);
    small.push_back(drained(10));
    std::deque<wire::Message> many;
    for (std::uint64_t g = 1; g <= 3; ++g)
        many.push_back(drained(g));
    EXPECT_EQ(small.push_front(std::move(many)), 2u);
    all = small.take_all();
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(generation_of(all[0]), 3u);
    EXPECT_EQ(generation_of(all[1]), 10u);
}

}  // namespace
}  // namespace pgbv::plugin
