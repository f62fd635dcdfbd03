// One-line, levelled logging of the controller's events.

#include "controller/log.hpp"

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <string>

namespace pgbv::ctl::log {
namespace {

Level g_level = Level::kInfo;
Sink g_sink;

// PgBouncer's level names, so that both logs read alike.
const char* tag(Level level) {
    switch (level) {
        case Level::kError:
            return "ERROR";
        case Level::kWarning:
            return "WARNING";
        case Level::kInfo:
            return "LOG";
        case Level::kDebug:
            return "DEBUG";
    }
    return "LOG";
}

void vwrite(Level level, const char* fmt, va_list ap) {
    if (!enabled(level)) return;
    char message[2048];
    vsnprintf(message, sizeof message, fmt, ap);
    const std::string text = one_line(message);
    if (g_sink) {
        g_sink(level, text);
        return;
    }
    struct timeval tv {};
    gettimeofday(&tv, nullptr);
    struct tm tm {};
    gmtime_r(&tv.tv_sec, &tm);
    char stamp[64];
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ld UTC [%ld] %s %s\n", stamp, static_cast<long>(tv.tv_usec / 1000),
            static_cast<long>(getpid()), tag(level), text.c_str());
}

}  // namespace

void set_level(Level level) {
    g_level = level;
}
Level level() {
    return g_level;
}
bool enabled(Level level) {
    return static_cast<int>(level) <= static_cast<int>(g_level);
}

std::optional<Level> parse_level(std::string_view name) {
    if (name == "error") return Level::kError;
    if (name == "warning") return Level::kWarning;
    if (name == "info") return Level::kInfo;
    if (name == "debug") return Level::kDebug;
    return std::nullopt;
}

const char* level_name(Level level) {
    switch (level) {
        case Level::kError:
            return "error";
        case Level::kWarning:
            return "warning";
        case Level::kInfo:
            return "info";
        case Level::kDebug:
            return "debug";
    }
    return "info";
}

void set_sink(Sink sink) {
    g_sink = std::move(sink);
}

std::string one_line(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    bool blank = false;
    for (char c : text) {
        const auto u = static_cast<unsigned char>(c);
        const bool space = u < 0x20 || u == 0x7f || c == ' ';
        if (space) {
            if (!blank && !out.empty()) out += ' ';
            blank = true;
        } else {
            out += c;
            blank = false;
        }
    }
    while (!out.empty() && out.back() == ' ')
        out.pop_back();
    return out;
}

bool same_error(std::string_view a, std::string_view b) {
    auto strip = [](std::string_view s) {
        std::string out;
        for (char c : s) {
            if (c < '0' || c > '9') out += c;
        }
        return out;
    };
    return strip(a) == strip(b);
}

// Each entry point starts its own va_list: no macro hides where it begins and ends.
void write(Level level, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vwrite(level, fmt, ap);
    va_end(ap);
}
void error(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vwrite(Level::kError, fmt, ap);
    va_end(ap);
}
void warning(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vwrite(Level::kWarning, fmt, ap);
    va_end(ap);
}
void info(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vwrite(Level::kInfo, fmt, ap);
    va_end(ap);
}
void debug(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vwrite(Level::kDebug, fmt, ap);
    va_end(ap);
}

}  // namespace pgbv::ctl::log
