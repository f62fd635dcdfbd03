// One-line, levelled logging of the controller's events to stderr (or a test sink).
//
// Every call writes exactly one line: control characters in the message are replaced, so
// a Vault error message spanning several lines still makes one log line.  Callers never
// pass secrets (passwords, tokens, secret IDs); lease IDs only at debug level.
//
// Two formats (log_format in [controller]):
//   text  2026-11-28 03:12:30.123 UTC [pid] LOG message
//   json  {"time":"2026-11-28T03:12:30.123Z","level":"info","msg":"message"
//          [,"event":"rotate"][,"set":"app"]}
// event() tags a line with what happened (login, fetch, renew, rotate, drain, revoke,
// vault) and the credential set concerned, for log pipelines to filter on.
//
// Thread safety: the controller is single-threaded; so is this module.

#ifndef PGBV_CONTROLLER_LOG_HPP
#define PGBV_CONTROLLER_LOG_HPP

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace pgbv::ctl::log {

enum class Level { kError = 1, kWarning = 2, kInfo = 3, kDebug = 4 };
enum class Format { kText, kJson };

// Lines above `level` are dropped.  Default: kInfo.
void set_level(Level level);
Level level();
bool enabled(Level level);

// "error", "warning", "info", "debug" -> Level; nullopt for anything else.
std::optional<Level> parse_level(std::string_view name);
const char* level_name(Level level);

// Default: kText.
void set_format(Format format);
Format format();
// "text", "json" -> Format; nullopt for anything else.
std::optional<Format> parse_format(std::string_view name);

// Receives each finished line (without the trailing newline).  An empty function
// restores the default sink, stderr.  For tests.
using Sink = std::function<void(Level, std::string_view line)>;
void set_sink(Sink sink);

void write(Level level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void warning(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void info(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void debug(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// A line tagged with an event name and (if not empty) a credential set's name.  The
// message should still read alone (name the set in it too): the text format and the test
// sink show only the message.
void event(Level level, const char* event, std::string_view set, const char* fmt, ...)
        __attribute__((format(printf, 4, 5)));

// The whole line as `format` writes it to stderr (no trailing newline); `message` must
// already be one line.  epoch_ms: the time in milliseconds since the epoch.
std::string render(Format format, Level level, std::int64_t epoch_ms, std::string_view message,
                   std::string_view event = {}, std::string_view set = {});

// `text` as the body of a JSON string (quotes not included): escapes ", \ and control
// characters, replaces bytes that are not valid UTF-8 by U+FFFD.
std::string json_escape(std::string_view text);

// Replaces control characters (newlines, tabs, escapes) by spaces and collapses runs of
// blanks, so that text from outside (a Vault error) stays on one line.
std::string one_line(std::string_view text);

// True if two error messages say the same thing, ignoring numbers (timings, ports, TTLs
// that change from one retry to the next): decides whether a retry's failure deserves a
// new log line.
bool same_error(std::string_view a, std::string_view b);

}  // namespace pgbv::ctl::log

#endif  // PGBV_CONTROLLER_LOG_HPP
