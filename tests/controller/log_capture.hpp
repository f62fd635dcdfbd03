// Collects the controller's log lines during a test (echoed to stderr when PGBV_TEST_LOG is set).

#ifndef PGBV_TESTS_CONTROLLER_LOG_CAPTURE_HPP
#define PGBV_TESTS_CONTROLLER_LOG_CAPTURE_HPP

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "controller/log.hpp"

namespace pgbv::ctl::testing {

class LogCapture {
public:
    explicit LogCapture(log::Level level = log::Level::kDebug) : saved_(log::level()) {
        log::set_level(level);
        const bool echo = std::getenv("PGBV_TEST_LOG") != nullptr;
        log::set_sink([this, echo](log::Level l, std::string_view line) {
            lines.emplace_back(std::string(log::level_name(l)) + ": " + std::string(line));
            if (echo) std::cerr << lines.back() << "\n";
        });
    }
    ~LogCapture() {
        log::set_sink(nullptr);
        log::set_level(saved_);
    }

    // Lines containing `needle`.
    int count(const std::string& needle) const {
        int n = 0;
        for (const auto& l : lines)
            n += l.find(needle) != std::string::npos ? 1 : 0;
        return n;
    }
    bool contains(const std::string& needle) const { return count(needle) > 0; }
    std::string all() const {
        std::string s;
        for (const auto& l : lines)
            s += l + "\n";
        return s;
    }

    std::vector<std::string> lines;

private:
    log::Level saved_;
};

}  // namespace pgbv::ctl::testing

#endif  // PGBV_TESTS_CONTROLLER_LOG_CAPTURE_HPP
