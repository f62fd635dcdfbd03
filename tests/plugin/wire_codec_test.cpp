// Tests of the wire codec (include/pgbv/wire_codec.hpp) and pgbv::Secret.
#include "pgbv/wire_codec.hpp"

#include <gtest/gtest.h>

#include <random>
#include <sstream>

#include "pgbv/secret.hpp"
#include "test_support.hpp"

namespace pgbv::wire {
namespace {

using Bytes = std::vector<std::uint8_t>;

// Builds frames by hand, so that malformed ones can be written.
class FrameBuilder {
public:
    explicit FrameBuilder(std::uint8_t type) { body_.push_back(type); }
    FrameBuilder& u16(std::uint16_t v) { return be(v, 2); }
    FrameBuilder& u32(std::uint32_t v) { return be(v, 4); }
    FrameBuilder& u64(std::uint64_t v) { return be(v, 8); }
    FrameBuilder& i64(std::int64_t v) { return be(static_cast<std::uint64_t>(v), 8); }
    FrameBuilder& str(std::string_view s) {
        u16(static_cast<std::uint16_t>(s.size()));
        body_.insert(body_.end(), s.begin(), s.end());
        return *this;
    }
    FrameBuilder& raw(Bytes b) {
        body_.insert(body_.end(), b.begin(), b.end());
        return *this;
    }
    Bytes frame() const { return with_length(static_cast<std::uint32_t>(body_.size())); }
    Bytes with_length(std::uint32_t length) const {
        Bytes out = {static_cast<std::uint8_t>(length >> 24),
                     static_cast<std::uint8_t>(length >> 16),
                     static_cast<std::uint8_t>(length >> 8), static_cast<std::uint8_t>(length)};
        out.insert(out.end(), body_.begin(), body_.end());
        return out;
    }

private:
    FrameBuilder& be(std::uint64_t v, int n) {
        for (int i = n - 1; i >= 0; --i)
            body_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
        return *this;
    }
    Bytes body_;
};

FrameBuilder credentials_frame(std::string_view set, std::uint64_t generation,
                               std::string_view user, std::string_view password,
                               std::int64_t expires_at = 0, std::uint32_t flags = 0) {
    FrameBuilder b(PGBV_MSG_CREDENTIALS);
    b.str(set).u64(generation).str(user).str(password).i64(expires_at).u32(flags);
    return b;
}

Decoded decode_all(const Bytes& frame) {
    FrameDecoder d;
    d.feed(frame);
    return d.next();
}

std::vector<Message> sample_messages() {
    std::vector<Message> out;
    out.emplace_back(Hello{1, "pgbv-plugin 0.1.0"});
    out.emplace_back(Hello{1, ""});
    out.emplace_back(Hello{7, std::string(64, 's')});
    out.emplace_back(Error{PGBV_ERR_VERSION, "version 2 not supported; I speak 1"});
    out.emplace_back(Error{PGBV_ERR_SHUTTING_DOWN, ""});
    out.emplace_back(Error{PGBV_ERR_PROTOCOL, std::string(512, 'e')});
    out.emplace_back(test::credentials("app", 1, "v-app-abc", "s3cr3t", 1700000000));
    out.emplace_back(test::credentials(std::string(63, 'x'), UINT64_MAX, std::string(127, 'u'),
                                       std::string(1024, 'p'), INT64_MAX));
    // Any byte but NUL is allowed in a password, including newlines and high bytes.
    out.emplace_back(test::credentials("A-z_0.9", 2, "u", "pa ss\n\x01\xff\"'", 0));
    out.emplace_back(SnapshotDone{0});
    out.emplace_back(SnapshotDone{UINT32_MAX});
    out.emplace_back(Drained{"app", 3, "v-app-old"});
    out.emplace_back(LoginFailed{"app", 4, "v-app-new", "28P01"});
    out.emplace_back(LoginFailed{"db.main-1", 5, "u", "08006"});
    return out;
}

Message copy(const Message& m) {
    if (const auto* c = std::get_if<Credentials>(&m)) return test::clone(*c);
    return std::visit(
            [](const auto& v) -> Message {
                using T = std::decay_t<decltype(v)>;
                if constexpr (std::is_same_v<T, Credentials>) {
                    return test::clone(v);
                } else {
                    return v;
                }
            },
            m);
}

// --- round trips -----------------------------------------------------------------------

TEST(WireCodec, EveryMessageRoundTrips) {
    for (const auto& m : sample_messages()) {
        SCOPED_TRACE(type_name(m));
        const Bytes frame = encode(m);
        ASSERT_GE(frame.size(), kHeaderSize + 1);
        const std::uint32_t length =
                (frame[0] << 24) | (frame[1] << 16) | (frame[2] << 8) | frame[3];
        EXPECT_EQ(length, frame.size() - kHeaderSize);
        EXPECT_EQ(frame[4], type_of(m));
        Decoded d = decode_all(frame);
        ASSERT_TRUE(d.ok()) << d.error;
        EXPECT_EQ(*d.message, m);
    }
}

TEST(WireCodec, EncodesFieldsBigEndianAsSpecified) {
    const Bytes frame = encode(LoginFailed{"ab", 0x0102030405060708ull, "u", "28P01"});
    const Bytes expected = {0,   0,  0,   23,  PGBV_MSG_LOGIN_FAILED,
                            0,   2,  'a', 'b', 1,
                            2,   3,  4,   5,   6,
                            7,   8,  0,   1,   'u',
                            0,   5,  '2', '8', 'P',
                            '0', '1'};
    EXPECT_EQ(frame, expected);

    const Bytes hello = encode(Hello{1, "x"});
    EXPECT_EQ(hello, (Bytes{0, 0, 0, 6, PGBV_MSG_HELLO, 0, 1, 0, 1, 'x'}));

    Credentials c = test::credentials("s", 1, "u", "p");
    c.expires_at = 0x7f00000000000001;
    const Bytes cf = encode(c);
    // expires_at is the 8 bytes before the 4 flag bytes at the end.
    EXPECT_EQ(Bytes(cf.end() - 12, cf.end()), (Bytes{0x7f, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}));
}

TEST(WireCodec, DecodesAStreamFedByteByByte) {
    Bytes stream;
    const auto messages = sample_messages();
    for (const auto& m : messages) {
        const Bytes f = encode(m);
        stream.insert(stream.end(), f.begin(), f.end());
    }
    FrameDecoder d;
    std::vector<Message> got;
    for (std::uint8_t byte : stream) {
        d.feed(&byte, 1);
        for (;;) {
            Decoded r = d.next();
            ASSERT_FALSE(r.failed()) << r.error;
            if (r.need_more()) break;
            got.push_back(std::move(*r.message));
        }
    }
    ASSERT_EQ(got.size(), messages.size());
    for (std::size_t i = 0; i < got.size(); ++i)
        EXPECT_EQ(got[i], messages[i]) << i;
    EXPECT_EQ(d.buffered(), 0u);
}

TEST(WireCodec, DecodesAStreamFedInRandomChunks) {
    const auto messages = sample_messages();
    Bytes stream;
    std::vector<Message> expected;
    for (int round = 0; round < 20; ++round) {
        for (const auto& m : messages) {
            const Bytes f = encode(m);
            stream.insert(stream.end(), f.begin(), f.end());
            expected.push_back(copy(m));
        }
    }
    for (std::uint64_t seed = 1; seed <= 50; ++seed) {
        SCOPED_TRACE(seed);
        std::mt19937_64 random(seed);
        std::uniform_int_distribution<std::size_t> chunk(0, seed % 2 ? 9000 : 40);
        FrameDecoder d;
        std::vector<Message> got;
        std::size_t off = 0;
        while (off < stream.size()) {
            const std::size_t n = std::min(chunk(random), stream.size() - off);
            d.feed(stream.data() + off, n);
            off += n;
            for (;;) {
                Decoded r = d.next();
                ASSERT_FALSE(r.failed()) << r.error;
                if (r.need_more()) break;
                got.push_back(std::move(*r.message));
            }
        }
        ASSERT_EQ(got.size(), expected.size());
        for (std::size_t i = 0; i < got.size(); ++i)
            ASSERT_EQ(got[i], expected[i]) << i;
    }
}

TEST(WireCodec, NeedsMoreUntilTheWholeFrameIsThere) {
    const Bytes frame = encode(Drained{"app", 1, "u"});
    FrameDecoder d;
    EXPECT_TRUE(d.next().need_more());
    for (std::size_t i = 0; i + 1 < frame.size(); ++i) {
        d.feed(&frame[i], 1);
        EXPECT_TRUE(d.next().need_more()) << i;
    }
    d.feed(&frame.back(), 1);
    EXPECT_TRUE(d.next().ok());
    EXPECT_TRUE(d.next().need_more());
}

TEST(WireCodec, ResetStartsAFreshStream) {
    FrameDecoder d;
    const Bytes bad = {0, 0, 0, 0};
    d.feed(bad);
    EXPECT_TRUE(d.next().failed());
    d.reset();
    EXPECT_FALSE(d.failed());
    d.feed(encode(SnapshotDone{3}));
    Decoded r = d.next();
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(std::get<SnapshotDone>(*r.message).count, 3u);
}

// --- malformed frames ------------------------------------------------------------------

struct Malformed {
    const char* name;
    Bytes frame;
    const char* reason_contains;
};

std::vector<Malformed> malformed_frames() {
    const std::string marker = "SECRETMARKER";
    std::vector<Malformed> v;
    v.push_back({"length 0", {0, 0, 0, 0}, "length 0"});
    v.push_back({"length above bound", FrameBuilder(PGBV_MSG_HELLO).with_length(8193), "8193"});
    v.push_back({"length huge", {0xff, 0xff, 0xff, 0xff}, "exceeds"});
    v.push_back(
            {"unknown type 0x00", FrameBuilder(0x00).u32(1).frame(), "unknown message type 0x00"});
    v.push_back({"unknown type 0x03", FrameBuilder(0x03).frame(), "unknown message type 0x03"});
    v.push_back({"unknown type 0xff", FrameBuilder(0xff).str(marker).frame(), "0xff"});
    v.push_back({"HELLO empty body", FrameBuilder(PGBV_MSG_HELLO).frame(), "runs past"});
    v.push_back({"HELLO string past end",
                 FrameBuilder(PGBV_MSG_HELLO).u16(1).u16(50).raw({'a', 'b'}).frame(), "runs past"});
    v.push_back({"HELLO trailing bytes",
                 FrameBuilder(PGBV_MSG_HELLO).u16(1).str("x").raw({0}).frame(), "1 bytes left"});
    v.push_back(
            {"HELLO version 0", FrameBuilder(PGBV_MSG_HELLO).u16(0).str("x").frame(), "version"});
    v.push_back({"HELLO software too long",
                 FrameBuilder(PGBV_MSG_HELLO).u16(1).str(std::string(65, 'a')).frame(),
                 "software"});
    v.push_back({"HELLO software with NUL",
                 FrameBuilder(PGBV_MSG_HELLO).u16(1).str(std::string("a\0b", 3)).frame(), "NUL"});
    v.push_back({"ERROR code 0", FrameBuilder(PGBV_MSG_ERROR).u16(0).str(marker).frame(), "code"});
    v.push_back({"ERROR code 6", FrameBuilder(PGBV_MSG_ERROR).u16(6).str(marker).frame(), "code"});
    v.push_back({"ERROR message too long",
                 FrameBuilder(PGBV_MSG_ERROR).u16(2).str(std::string(513, 'm')).frame(), "512"});
    v.push_back({"ERROR message with NUL",
                 FrameBuilder(PGBV_MSG_ERROR).u16(2).str(marker + std::string(1, '\0')).frame(),
                 "NUL"});
    v.push_back({"CREDENTIALS empty set", credentials_frame("", 1, "u", marker).frame(), "set"});
    v.push_back({"CREDENTIALS set too long",
                 credentials_frame(std::string(64, 's'), 1, "u", marker).frame(), "set"});
    v.push_back({"CREDENTIALS set with space", credentials_frame("a b", 1, "u", marker).frame(),
                 "set"});
    v.push_back({"CREDENTIALS set with slash", credentials_frame("a/b", 1, "u", marker).frame(),
                 "set"});
    v.push_back({"CREDENTIALS set with NUL",
                 credentials_frame(std::string("a\0b", 3), 1, "u", marker).frame(), "set"});
    v.push_back({"CREDENTIALS set non-ASCII",
                 credentials_frame("caf\xc3\xa9", 1, "u", marker).frame(), "set"});
    v.push_back({"CREDENTIALS generation 0", credentials_frame("app", 0, "u", marker).frame(),
                 "generation"});
    v.push_back({"CREDENTIALS empty username", credentials_frame("app", 1, "", marker).frame(),
                 "username"});
    v.push_back({"CREDENTIALS username too long",
                 credentials_frame("app", 1, std::string(128, 'u'), marker).frame(), "username"});
    v.push_back({"CREDENTIALS username with NUL",
                 credentials_frame("app", 1, std::string("u\0v", 3), marker).frame(), "username"});
    v.push_back({"CREDENTIALS empty password", credentials_frame("app", 1, "u", "").frame(),
                 "password"});
    v.push_back({"CREDENTIALS password too long",
                 credentials_frame("app", 1, "u", marker + std::string(1013, 'p')).frame(),
                 "password"});
    v.push_back({"CREDENTIALS password with NUL",
                 credentials_frame("app", 1, "u", marker + std::string(1, '\0') + "x").frame(),
                 "password"});
    v.push_back({"CREDENTIALS negative expires_at",
                 credentials_frame("app", 1, "u", marker, -5).frame(), "expires_at"});
    v.push_back({"CREDENTIALS flags 1", credentials_frame("app", 1, "u", marker, 0, 1).frame(),
                 "flags"});
    v.push_back({"CREDENTIALS flags high bit",
                 credentials_frame("app", 1, "u", marker, 0, 0x80000000u).frame(), "flags"});
    v.push_back({"CREDENTIALS truncated before flags",
                 FrameBuilder(PGBV_MSG_CREDENTIALS)
                         .str("app")
                         .u64(1)
                         .str("u")
                         .str(marker)
                         .i64(0)
                         .frame(),
                 "'flags' runs past"});
    v.push_back({"CREDENTIALS password length past end",
                 FrameBuilder(PGBV_MSG_CREDENTIALS)
                         .str("app")
                         .u64(1)
                         .str("u")
                         .u16(2000)
                         .raw({'x'})
                         .frame(),
                 "'password' runs past"});
    v.push_back({"CREDENTIALS trailing bytes",
                 credentials_frame("app", 1, "u", marker).raw({1, 2, 3}).frame(), "3 bytes left"});
    v.push_back({"SNAPSHOT_DONE short", FrameBuilder(PGBV_MSG_SNAPSHOT_DONE).u16(1).frame(),
                 "runs past"});
    v.push_back({"SNAPSHOT_DONE trailing",
                 FrameBuilder(PGBV_MSG_SNAPSHOT_DONE).u32(1).raw({0}).frame(), "bytes left"});
    v.push_back({"DRAINED generation 0",
                 FrameBuilder(PGBV_MSG_DRAINED).str("app").u64(0).str("u").frame(), "generation"});
    v.push_back({"DRAINED bad set",
                 FrameBuilder(PGBV_MSG_DRAINED).str("a:b").u64(1).str("u").frame(), "set"});
    v.push_back({"DRAINED no username", FrameBuilder(PGBV_MSG_DRAINED).str("app").u64(1).frame(),
                 "'username' runs past"});
    v.push_back({"DRAINED empty username",
                 FrameBuilder(PGBV_MSG_DRAINED).str("app").u64(1).str("").frame(), "username"});
    auto lf = [](std::string_view sqlstate) {
        return FrameBuilder(PGBV_MSG_LOGIN_FAILED).str("app").u64(1).str("u").str(sqlstate).frame();
    };
    v.push_back({"LOGIN_FAILED sqlstate 4 bytes", lf("28P0"), "sqlstate"});
    v.push_back({"LOGIN_FAILED sqlstate 6 bytes", lf("28P011"), "sqlstate"});
    v.push_back({"LOGIN_FAILED sqlstate lower case", lf("28p01"), "sqlstate"});
    v.push_back({"LOGIN_FAILED sqlstate with NUL",
                 lf(std::string("28\0"
                                "01",
                                5)),
                 "sqlstate"});
    v.push_back(
            {"LOGIN_FAILED generation 0",
             FrameBuilder(PGBV_MSG_LOGIN_FAILED).str("app").u64(0).str("u").str("28P01").frame(),
             "generation"});
    return v;
}

TEST(WireCodec, RejectsEveryMalformedFrameWithoutItsContent) {
    for (const auto& m : malformed_frames()) {
        SCOPED_TRACE(m.name);
        Decoded d = decode_all(m.frame);
        ASSERT_TRUE(d.failed());
        EXPECT_NE(d.error.find(m.reason_contains), std::string::npos) << d.error;
        EXPECT_EQ(d.error.find("SECRETMARKER"), std::string::npos) << d.error;
        EXPECT_EQ(d.error.find("SECRET"), std::string::npos) << d.error;
        EXPECT_FALSE(d.message.has_value());
    }
}

TEST(WireCodec, MalformedFramesFailTheSameWayByteByByte) {
    for (const auto& m : malformed_frames()) {
        SCOPED_TRACE(m.name);
        FrameDecoder d;
        Decoded last;
        for (std::uint8_t byte : m.frame) {
            d.feed(&byte, 1);
            last = d.next();
            if (last.failed()) break;
            ASSERT_TRUE(last.need_more());
        }
        ASSERT_TRUE(last.failed());
        EXPECT_EQ(last.error, decode_all(m.frame).error);
    }
}

TEST(WireCodec, ChecksTheLengthBeforeTheBodyArrives) {
    // Four header bytes announcing too much are enough to fail: nothing is buffered
    // waiting for a body that will never be accepted.
    FrameDecoder d;
    const Bytes header = {0x00, 0x00, 0x20, 0x01};  // 8193
    d.feed(header);
    EXPECT_TRUE(d.failed());
    EXPECT_EQ(d.buffered(), 0u);
    Decoded r = d.next();
    ASSERT_TRUE(r.failed());
    EXPECT_NE(r.error.find("8193"), std::string::npos);
}

TEST(WireCodec, AcceptsTheMaximumLength) {
    // 8192 passes the length check (and then fails on the unknown type).
    Bytes frame = FrameBuilder(0x7e).raw(Bytes(8191, 0)).frame();
    ASSERT_EQ(frame.size(), 4u + 8192u);
    Decoded d = decode_all(frame);
    ASSERT_TRUE(d.failed());
    EXPECT_NE(d.error.find("unknown message type 0x7e"), std::string::npos) << d.error;
}

TEST(WireCodec, ErrorsAreStickyAndDropLaterInput) {
    FrameDecoder d;
    Bytes stream = FrameBuilder(0x42).frame();
    const Bytes good = encode(SnapshotDone{1});
    stream.insert(stream.end(), good.begin(), good.end());
    d.feed(stream);
    Decoded first = d.next();
    ASSERT_TRUE(first.failed());
    d.feed(good);
    Decoded second = d.next();
    ASSERT_TRUE(second.failed());
    EXPECT_EQ(first.error, second.error);
    EXPECT_EQ(d.buffered(), 0u);
}

TEST(WireCodec, GoodFramesBeforeABadOneAreDelivered) {
    Bytes stream = encode(SnapshotDone{1});
    const Bytes bad = {0, 0, 0, 0};
    stream.insert(stream.end(), bad.begin(), bad.end());
    FrameDecoder d;
    d.feed(stream);
    EXPECT_TRUE(d.next().ok());
    EXPECT_TRUE(d.next().failed());
}

// --- encoding validation ---------------------------------------------------------------

TEST(WireCodec, EncodeRejectsWhatTheDecoderWouldReject) {
    std::vector<Message> bad;
    bad.emplace_back(Hello{0, "x"});
    bad.emplace_back(Hello{1, std::string(65, 'x')});
    bad.emplace_back(Error{0, "x"});
    bad.emplace_back(Error{9, "x"});
    bad.emplace_back(Error{2, std::string(513, 'x')});
    bad.emplace_back(test::credentials("", 1, "u", "p"));
    bad.emplace_back(test::credentials("bad set", 1, "u", "p"));
    bad.emplace_back(test::credentials("s", 0, "u", "p"));
    bad.emplace_back(test::credentials("s", 1, "", "p"));
    bad.emplace_back(test::credentials("s", 1, "u", ""));
    bad.emplace_back(test::credentials("s", 1, "u", std::string(1025, 'p')));
    bad.emplace_back(test::credentials("s", 1, "u", std::string("p\0q", 3)));
    bad.emplace_back(test::credentials("s", 1, "u", "p", -1));
    Credentials flagged = test::credentials("s", 1, "u", "p");
    flagged.flags = 2;
    bad.emplace_back(std::move(flagged));
    bad.emplace_back(Drained{"s", 0, "u"});
    bad.emplace_back(LoginFailed{"s", 1, "u", "2801"});
    bad.emplace_back(LoginFailed{"s", 1, "u", "28p01"});
    for (const auto& m : bad) {
        SCOPED_TRACE(type_name(m));
        ASSERT_TRUE(validation_error(m).has_value());
        EXPECT_THROW(encode(m), EncodeError);
    }
}

TEST(WireCodec, EncodeErrorsDoNotContainThePassword) {
    try {
        encode(test::credentials("s", 1, "u", "hunter2" + std::string(1020, 'x')));
        FAIL() << "expected EncodeError";
    } catch (const EncodeError& e) {
        EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos);
        EXPECT_NE(std::string(e.what()).find("password"), std::string::npos);
    }
}

// --- types and directions --------------------------------------------------------------

TEST(WireCodec, DirectionsFollowTheProtocol) {
    EXPECT_EQ(direction_of(PGBV_MSG_HELLO), Direction::kBoth);
    EXPECT_EQ(direction_of(PGBV_MSG_ERROR), Direction::kBoth);
    EXPECT_EQ(direction_of(PGBV_MSG_CREDENTIALS), Direction::kControllerToPlugin);
    EXPECT_EQ(direction_of(PGBV_MSG_SNAPSHOT_DONE), Direction::kControllerToPlugin);
    EXPECT_EQ(direction_of(PGBV_MSG_DRAINED), Direction::kPluginToController);
    EXPECT_EQ(direction_of(PGBV_MSG_LOGIN_FAILED), Direction::kPluginToController);
    EXPECT_EQ(direction_of(0x05), std::nullopt);

    EXPECT_TRUE(may_send(Sender::kPlugin, Hello{}));
    EXPECT_TRUE(may_send(Sender::kController, Hello{}));
    EXPECT_TRUE(may_send(Sender::kController, SnapshotDone{}));
    EXPECT_FALSE(may_send(Sender::kPlugin, SnapshotDone{}));
    EXPECT_TRUE(may_send(Sender::kPlugin, Drained{}));
    EXPECT_FALSE(may_send(Sender::kController, LoginFailed{}));
    EXPECT_FALSE(may_send(Sender::kPlugin, Credentials{}));
    EXPECT_STREQ(type_name(PGBV_MSG_LOGIN_FAILED), "LOGIN_FAILED");
    EXPECT_STREQ(type_name(0x99), "UNKNOWN");
}

TEST(WireCodec, FieldHelpers) {
    EXPECT_TRUE(valid_set_name("A-z_0.9"));
    EXPECT_TRUE(valid_set_name(std::string(63, 'a')));
    EXPECT_FALSE(valid_set_name(std::string(64, 'a')));
    EXPECT_FALSE(valid_set_name(""));
    EXPECT_FALSE(valid_set_name("a+b"));
    EXPECT_TRUE(valid_sqlstate("28P01"));
    EXPECT_FALSE(valid_sqlstate("28P0"));
    EXPECT_FALSE(valid_sqlstate("28P0a"));
}

// --- Secret ----------------------------------------------------------------------------

TEST(Secret, HoldsMovesAndClears) {
    Secret a("hunter2");
    EXPECT_EQ(a.view(), "hunter2");
    EXPECT_EQ(a.size(), 7u);
    const char* buffer = a.data();
    Secret b = std::move(a);
    // NOLINTNEXTLINE(bugprone-use-after-move,clang-analyzer-cplusplus.Move): specified state
    EXPECT_TRUE(a.empty());
    // NOLINTNEXTLINE(bugprone-use-after-move,clang-analyzer-cplusplus.Move)
    EXPECT_EQ(a.view(), "");
    EXPECT_EQ(b.data(), buffer) << "a move must not copy the bytes";
    Secret c = b.clone();
    EXPECT_EQ(c, b);
    EXPECT_NE(c.data(), b.data());
    c.assign("other");
    EXPECT_FALSE(c == b);
    EXPECT_TRUE(c.equals("other"));
    EXPECT_FALSE(c.equals("othe"));
    c.clear();
    EXPECT_TRUE(c.empty());
    EXPECT_STREQ(c.data(), "");
    c.assign(b.view());
    c.assign(c.view());  // self-aliasing assign
    EXPECT_EQ(c.view(), "hunter2");
}

TEST(Secret, TakeWipesTheSource) {
    std::string source = "correct horse battery staple";
    const std::size_t capacity = source.capacity();
    Secret s = Secret::take(std::move(source));
    EXPECT_EQ(s.view(), "correct horse battery staple");
    EXPECT_TRUE(source.empty());  // NOLINT(bugprone-use-after-move): take() defines it
    // The characters the string still owns are zeros.
    source.resize(capacity);
    EXPECT_EQ(source, std::string(capacity, '\0'));
}

TEST(Secret, NeverPrints) {
    Secret s("hunter2");
    std::ostringstream os;
    os << s;
    EXPECT_EQ(os.str(), "<redacted>");
    EXPECT_EQ(::testing::PrintToString(s), "<redacted>");
}

TEST(Secret, SecureWipeOfAString) {
    std::string s = "some secret value that is long enough to be on the heap";
    secure_wipe(s);
    EXPECT_TRUE(s.empty());
}

}  // namespace
}  // namespace pgbv::wire
