// The timing policy: renew points, caps, margins, backoff, relogin.

#include "controller/lease_policy.hpp"

#include <gtest/gtest.h>

namespace pgbv::ctl::policy {
namespace {

using namespace std::chrono_literals;

const MonoTime t0{};

TEST(LeasePolicy, RenewsAtTwoThirdsWithOnlyEarlierJitter) {
    // One hour lease, small margin: the fraction decides.
    EXPECT_EQ(renew_at(t0, 3600s, 60s, 0.0), t0 + 2400s);
    const auto earliest = renew_at(t0, 3600s, 60s, 0.999999);
    EXPECT_GE(earliest, t0 + 2160s);  // at most 10 % of the two thirds earlier
    EXPECT_LT(earliest, t0 + 2400s);
}

TEST(LeasePolicy, RenewsEarlyEnoughToFindTheCapBeforeTheMargin) {
    // 60 s lease, 25 s margin: renew by 60 - 25 - 1 = 34 s, before two thirds (40 s).
    EXPECT_EQ(renew_at(t0, 60s, 25s, 0.0), t0 + 34s);
}

TEST(LeasePolicy, MarginNeverTakesMoreThanHalfTheTtl) {
    EXPECT_EQ(effective_margin(60s, 3600s), 60s);
    EXPECT_EQ(effective_margin(60s, 10s), 5s);
    EXPECT_EQ(effective_margin(0s, 10s), 0s);
    // A 10 s lease with a 60 s margin still lives 4 s before its first renewal.
    EXPECT_EQ(renew_at(t0, 10s, 60s, 0.0), t0 + 4s);
}

TEST(LeasePolicy, NeverSchedulesSoonerThanTheMinimumStep) {
    EXPECT_EQ(renew_at(t0, 0s, 0s, 0.0), t0 + kMinStep);
    EXPECT_EQ(renew_at(t0, 100ms, 60s, 0.5), t0 + kMinStep);
}

TEST(LeasePolicy, CapIsAGrantBelowTheRequest) {
    EXPECT_FALSE(renewal_capped(3600s, 3600s));
    EXPECT_TRUE(renewal_capped(3600s, 3599s));
    EXPECT_TRUE(renewal_capped(60s, 0s));
}

TEST(LeasePolicy, RotatesAMarginBeforeTheDeadline) {
    EXPECT_EQ(rotate_at(t0 + 600s, 60s, 3600s), t0 + 540s);
    EXPECT_EQ(rotate_at(t0 + 600s, 60s, 20s), t0 + 590s);  // margin capped at TTL/2
}

TEST(LeasePolicy, EarliestTreatsNulloptAsNever) {
    EXPECT_EQ(earliest(std::nullopt, std::nullopt), std::nullopt);
    EXPECT_EQ(earliest(t0 + 5s, std::nullopt), t0 + 5s);
    EXPECT_EQ(earliest(std::nullopt, t0 + 7s), t0 + 7s);
    EXPECT_EQ(earliest(t0 + 9s, t0 + 7s), t0 + 7s);
}

TEST(LeasePolicy, BackoffDoublesUpToTheMaximumWithBoundedJitter) {
    EXPECT_EQ(backoff(1, 1s, 30s, 0.0, std::nullopt), 1s);
    EXPECT_EQ(backoff(2, 1s, 30s, 0.0, std::nullopt), 2s);
    EXPECT_EQ(backoff(5, 1s, 30s, 0.0, std::nullopt), 16s);
    EXPECT_EQ(backoff(6, 1s, 30s, 0.0, std::nullopt), 30s);
    EXPECT_EQ(backoff(60, 1s, 30s, 0.0, std::nullopt), 30s);  // no overflow
    const Duration jittered = backoff(6, 1s, 30s, 0.999, std::nullopt);
    EXPECT_GE(jittered, 22500ms);
    EXPECT_LT(jittered, 30s);
}

TEST(LeasePolicy, BackoffKeepsRetryingBeforeTheDeadline) {
    EXPECT_EQ(backoff(6, 1s, 30s, 0.0, 20s), 10s);
    EXPECT_EQ(backoff(6, 1s, 30s, 0.0, 100ms), kMinStep);
}

TEST(LeasePolicy, ReloginLeavesEveryMarginRoom) {
    EXPECT_EQ(relogin_lead(60s), 70s);
    // Token of 1 h: log in again 70 s before its end.
    EXPECT_EQ(relogin_at(t0, t0 + 3600s, 70s), t0 + 3530s);
    // A short token: at half its life at the latest.
    EXPECT_EQ(relogin_at(t0, t0 + 60s, 70s), t0 + 30s);
}

}  // namespace
}  // namespace pgbv::ctl::policy
