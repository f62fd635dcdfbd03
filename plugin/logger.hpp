// The plugin's log: one-line messages handed to the host (PgBouncer's log).
#ifndef PGBV_PLUGIN_LOGGER_HPP
#define PGBV_PLUGIN_LOGGER_HPP

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "pgbv/plugin_abi.h"

namespace pgbv::plugin {

// Sends log lines to a sink (the host's log() in production, a vector in tests).
// Callers must never pass a secret; text that came from the controller goes through
// printable() first.  Logging never throws and never fails.
class Logger {
public:
    using Sink = std::function<void(int level, const std::string& message)>;

    explicit Logger(Sink sink) : sink_(std::move(sink)) {}

    void log(int level, const std::string& message) const noexcept;
    void error(const std::string& message) const noexcept { log(PGBV_LOG_ERROR, message); }
    void warning(const std::string& message) const noexcept { log(PGBV_LOG_WARNING, message); }
    void info(const std::string& message) const noexcept { log(PGBV_LOG_INFO, message); }
    void debug(const std::string& message) const noexcept { log(PGBV_LOG_DEBUG, message); }

private:
    Sink sink_;
};

// Returns `untrusted` safe for a log line: bytes outside printable ASCII become '?', and
// text beyond `max_bytes` is replaced by "...".
std::string printable(std::string_view untrusted, std::size_t max_bytes = 200);

}  // namespace pgbv::plugin

#endif  // PGBV_PLUGIN_LOGGER_HPP
