// One-line, levelled logging of the controller's events to stderr (or a test sink).
//
// Every call writes exactly one line: control characters in the message are replaced, so
// a Vault error message spanning several lines still makes one log line.  Callers never
// pass secrets (passwords, tokens, secret IDs); lease IDs only at debug level.
//
// Thread safety: the controller is single-threaded; so is this module.

#ifndef PGBV_CONTROLLER_LOG_HPP
#define PGBV_CONTROLLER_LOG_HPP

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace pgbv::ctl::log {

enum class Level { kError = 1, kWarning = 2, kInfo = 3, kDebug = 4 };

// Lines above `level` are dropped.  Default: kInfo.
void set_level(Level level);
Level level();
bool enabled(Level level);

// "error", "warning", "info", "debug" -> Level; nullopt for anything else.
std::optional<Level> parse_level(std::string_view name);
const char* level_name(Level level);

// Receives each finished line (without the trailing newline).  An empty function
// restores the default sink, stderr.  For tests.
using Sink = std::function<void(Level, std::string_view line)>;
void set_sink(Sink sink);

void write(Level level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void warning(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void info(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void debug(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// Replaces control characters (newlines, tabs, escapes) by spaces and collapses runs of
// blanks, so that text from outside (a Vault error) stays on one line.
std::string one_line(std::string_view text);

// True if two error messages say the same thing, ignoring numbers (timings, ports, TTLs
// that change from one retry to the next): decides whether a retry's failure deserves a
// new log line.
bool same_error(std::string_view a, std::string_view b);

}  // namespace pgbv::ctl::log

#endif  // PGBV_CONTROLLER_LOG_HPP
