// One-line, levelled logging of the controller's events.

#include "controller/log.hpp"

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <string>

namespace pgbv::ctl::log {
namespace {

Level g_level = Level::kInfo;
Format g_format = Format::kText;
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

std::int64_t now_ms() {
    struct timeval tv {};
    gettimeofday(&tv, nullptr);
    return static_cast<std::int64_t>(tv.tv_sec) * 1000 + tv.tv_usec / 1000;
}

void vwrite(Level level, const char* event, std::string_view set, const char* fmt, va_list ap) {
    if (!enabled(level)) return;
    char message[2048];
    vsnprintf(message, sizeof message, fmt, ap);
    const std::string text = one_line(message);
    if (g_sink) {
        g_sink(level, text);
        return;
    }
    const std::string line =
            render(g_format, level, now_ms(), text, event ? event : "", set) + "\n";
    // One write per line, so that lines from a forked child or a second thread never mix.
    fwrite(line.data(), 1, line.size(), stderr);
    fflush(stderr);
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is not one.
std::size_t utf8_length(std::string_view s, std::size_t i) {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = b(i);
    std::size_t n = 0;
    unsigned min = 0;
    unsigned cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (i + n > s.size()) return 0;
    for (std::size_t k = 1; k < n; ++k) {
        if ((b(i + k) & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (b(i + k) & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
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

void set_format(Format format) {
    g_format = format;
}
Format format() {
    return g_format;
}
std::optional<Format> parse_format(std::string_view name) {
    if (name == "text") return Format::kText;
    if (name == "json") return Format::kJson;
    return std::nullopt;
}

std::string json_escape(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 8);
    for (std::size_t i = 0; i < text.size();) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else if (c < 0x80) {
            out += static_cast<char>(c);
        } else if (const std::size_t n = utf8_length(text, i)) {
            out.append(text.substr(i, n));
            i += n;
            continue;
        } else {
            out += "\\ufffd";
        }
        ++i;
    }
    return out;
}

std::string render(Format format, Level level, std::int64_t epoch_ms, std::string_view message,
                   std::string_view event, std::string_view set) {
    const time_t seconds = static_cast<time_t>(epoch_ms / 1000);
    const long millis = static_cast<long>(epoch_ms % 1000);
    struct tm tm {};
    gmtime_r(&seconds, &tm);
    char stamp[64];
    std::string line;
    if (format == Format::kText) {
        strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
        char head[128];
        snprintf(head, sizeof head, "%s.%03ld UTC [%ld] %s ", stamp, millis,
                 static_cast<long>(getpid()), tag(level));
        line = head;
        line.append(message);
        return line;
    }
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    char time_field[96];
    snprintf(time_field, sizeof time_field, "{\"time\":\"%s.%03ldZ\",\"level\":\"", stamp, millis);
    line = time_field;
    line += level_name(level);
    line += "\",\"msg\":\"";
    line += json_escape(message);
    line += '"';
    if (!event.empty()) {
        line += ",\"event\":\"";
        line += json_escape(event);
        line += '"';
    }
    if (!set.empty()) {
        line += ",\"set\":\"";
        line += json_escape(set);
        line += '"';
    }
    line += '}';
    return line;
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
    vwrite(level, nullptr, {}, fmt, ap);
    va_end(ap);
}
void error(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vwrite(Level::kError, nullptr, {}, fmt, ap);
    va_end(ap);
}
void warning(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vwrite(Level::kWarning, nullptr, {}, fmt, ap);
    va_end(ap);
}
void info(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vwrite(Level::kInfo, nullptr, {}, fmt, ap);
    va_end(ap);
}
void debug(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vwrite(Level::kDebug, nullptr, {}, fmt, ap);
    va_end(ap);
}

void event(Level level, const char* event, std::string_view set, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vwrite(level, event, set, fmt, ap);
    va_end(ap);
}

}  // namespace pgbv::ctl::log
