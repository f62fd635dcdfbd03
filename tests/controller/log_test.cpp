// The log formats: text and JSON lines (valid JSON, escaped, one line), event tags, and
// what reaches stderr.

#include "controller/log.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <jansson.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "log_capture.hpp"

namespace pgbv::ctl {
namespace {

// 2026-11-28T03:12:30.123Z
constexpr std::int64_t kWhen = 1795835550123;

// True if `text` has the shape of `pattern`, where '9' stands for any digit.  (std::regex
// trips -Wmaybe-uninitialized in g++ 12 with the sanitizers.)
bool shaped(std::string_view text, std::string_view pattern) {
    if (text.size() != pattern.size()) return false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const bool digit = text[i] >= '0' && text[i] <= '9';
        if (pattern[i] == '9' ? !digit : text[i] != pattern[i]) return false;
    }
    return true;
}

struct Parsed {
    json_t* j = nullptr;
    ~Parsed() { json_decref(j); }
    std::string str(const char* key) const {
        const json_t* v = json_object_get(j, key);
        return json_is_string(v) ? std::string(json_string_value(v), json_string_length(v))
                                 : std::string("<absent>");
    }
};

void parse(const std::string& line, Parsed* out) {
    ASSERT_EQ(line.find('\n'), std::string::npos) << line;
    json_error_t err;
    out->j = json_loadb(line.data(), line.size(), 0, &err);
    ASSERT_NE(out->j, nullptr) << err.text << ": " << line;
    ASSERT_TRUE(json_is_object(out->j));
}

TEST(LogFormat, JsonLineFields) {
    const std::string line = log::render(log::Format::kJson, log::Level::kWarning, kWhen,
                                         "set app: renewal failed", "renew", "app");
    Parsed p;
    ASSERT_NO_FATAL_FAILURE(parse(line, &p));
    EXPECT_EQ(p.str("time"), "2026-11-28T03:12:30.123Z");
    EXPECT_EQ(p.str("level"), "warning");
    EXPECT_EQ(p.str("msg"), "set app: renewal failed");
    EXPECT_EQ(p.str("event"), "renew");
    EXPECT_EQ(p.str("set"), "app");
    EXPECT_EQ(json_object_size(p.j), 5u);
    // No event, no set: the keys are left out.
    Parsed q;
    ASSERT_NO_FATAL_FAILURE(
            parse(log::render(log::Format::kJson, log::Level::kInfo, kWhen, "started"), &q));
    EXPECT_EQ(json_object_size(q.j), 3u);
    EXPECT_EQ(q.str("level"), "info");
    EXPECT_TRUE(shaped(q.str("time"), "9999-99-99T99:99:99.999Z")) << q.str("time");
}

TEST(LogFormat, JsonEscaping) {
    const std::string nasty = std::string("quote \" backslash \\ tab \t nl \n cr \r bell \x07 ") +
                              "del \x7f utf8 \xc3\xa9\xe2\x82\xac bad \xff\xc3 end";
    const std::string line =
            log::render(log::Format::kJson, log::Level::kError, kWhen, nasty, "vault", "a\"b");
    Parsed p;
    ASSERT_NO_FATAL_FAILURE(parse(line, &p));
    EXPECT_EQ(p.str("msg"), std::string("quote \" backslash \\ tab \t nl \n cr \r bell \x07 ") +
                                    "del \x7f utf8 \xc3\xa9\xe2\x82\xac bad \xef\xbf\xbd"
                                    "\xef\xbf\xbd end");
    EXPECT_EQ(p.str("set"), "a\"b");
    EXPECT_EQ(log::json_escape("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd");  // a surrogate
    EXPECT_EQ(log::json_escape("\xf0\x9f\x94\x91"), "\xf0\x9f\x94\x91");   // 4 bytes, valid
    EXPECT_EQ(log::json_escape("\xc0\xaf"), "\\ufffd\\ufffd");             // overlong
}

TEST(LogFormat, TextLine) {
    const std::string line =
            log::render(log::Format::kText, log::Level::kInfo, kWhen, "hello", "rotate", "app");
    const std::string pid = std::to_string(getpid());
    EXPECT_EQ(line, "2026-11-28 03:12:30.123 UTC [" + pid + "] LOG hello");
    EXPECT_NE(log::render(log::Format::kText, log::Level::kError, kWhen, "x").find(" ERROR x"),
              std::string::npos);
}

TEST(LogFormat, ParseFormat) {
    EXPECT_EQ(log::parse_format("text"), log::Format::kText);
    EXPECT_EQ(log::parse_format("json"), log::Format::kJson);
    EXPECT_FALSE(log::parse_format("JSON"));
    EXPECT_FALSE(log::parse_format(""));
}

TEST(LogFormat, EventCallsReachTheSinkAsOneLine) {
    testing::LogCapture logs(log::Level::kInfo);
    log::event(log::Level::kInfo, "rotate", "app", "set %s: generation %d\nis current", "app", 4);
    log::event(log::Level::kDebug, "renew", "app", "dropped at info");
    ASSERT_EQ(logs.lines.size(), 1u);
    EXPECT_EQ(logs.lines[0], "info: set app: generation 4 is current");
}

// What really reaches stderr, in both formats.
class StderrCapture {
public:
    StderrCapture() {
        char tmpl[] = "/tmp/pgbv-log-XXXXXX";
        fd_ = mkstemp(tmpl);
        path_ = tmpl;
        std::fflush(stderr);
        saved_ = dup(STDERR_FILENO);
        dup2(fd_, STDERR_FILENO);
    }
    ~StderrCapture() {
        restore();
        close(fd_);
        unlink(path_.c_str());
    }
    void restore() {
        if (saved_ < 0) return;
        std::fflush(stderr);
        dup2(saved_, STDERR_FILENO);
        close(saved_);
        saved_ = -1;
    }
    std::string text() {
        restore();
        std::string out;
        char buf[4096];
        lseek(fd_, 0, SEEK_SET);
        ssize_t n;
        while ((n = read(fd_, buf, sizeof buf)) > 0)
            out.append(buf, static_cast<std::size_t>(n));
        return out;
    }

private:
    int fd_ = -1;
    int saved_ = -1;
    std::string path_;
};

TEST(LogFormat, StderrJsonLines) {
    const log::Level level = log::level();
    log::set_level(log::Level::kInfo);
    log::set_format(log::Format::kJson);
    std::string out;
    {
        StderrCapture cap;
        log::event(log::Level::kWarning, "vault", "", "Vault is unreachable: %s",
                   "HTTP 503:\n\"sealed\"");
        log::info("plain %d", 1);
        out = cap.text();
    }
    log::set_format(log::Format::kText);
    log::set_level(level);
    ASSERT_EQ(out.back(), '\n');
    const std::string first = out.substr(0, out.find('\n'));
    const std::string second = out.substr(first.size() + 1, out.size() - first.size() - 2);
    EXPECT_EQ(second.find('\n'), std::string::npos);
    Parsed a;
    ASSERT_NO_FATAL_FAILURE(parse(first, &a));
    EXPECT_EQ(a.str("msg"), "Vault is unreachable: HTTP 503: \"sealed\"");
    EXPECT_EQ(a.str("event"), "vault");
    EXPECT_EQ(a.str("set"), "<absent>");
    EXPECT_EQ(a.str("level"), "warning");
    Parsed b;
    ASSERT_NO_FATAL_FAILURE(parse(second, &b));
    EXPECT_EQ(b.str("msg"), "plain 1");
    EXPECT_EQ(b.str("event"), "<absent>");
}

TEST(LogFormat, StderrTextLines) {
    const log::Level level = log::level();
    log::set_level(log::Level::kInfo);
    std::string out;
    {
        StderrCapture cap;
        log::event(log::Level::kInfo, "login", "", "logged in");
        out = cap.text();
    }
    log::set_level(level);
    const std::string tail = " UTC [" + std::to_string(getpid()) + "] LOG logged in\n";
    ASSERT_GT(out.size(), tail.size()) << out;
    EXPECT_TRUE(shaped(out.substr(0, out.size() - tail.size()), "9999-99-99 99:99:99.999")) << out;
    EXPECT_EQ(out.substr(out.size() - tail.size()), tail);
}

}  // namespace
}  // namespace pgbv::ctl
