// Encoder and streaming decoder of the plugin <-> controller wire protocol (PROTOCOL.md).
//
// One struct per message, a std::variant `Message` of them, `encode()` that turns a
// Message into one whole frame (length header included), and `FrameDecoder`, which takes
// bytes as they come off a socket, in chunks of any size, and hands back one Message at a
// time.  Both sides enforce every field rule of PROTOCOL.md through one function,
// `validation_error()`, so the encoder can never produce a frame the decoder rejects.
//
// Errors: encode() throws EncodeError (a std::invalid_argument) for a message that breaks
// a field rule; call validation_error() first for a path without exceptions.  The decoder
// never throws for bad input (only std::bad_alloc): it returns Decoded with an error.
// The functions taking a message accept a Message or any of its alternatives, so a
// Credentials need not be copied into a Message to be encoded.
//
// Where PROTOCOL.md says "a value out of range", this codec reads: HELLO.version >= 1,
// ERROR.code in 1..5, CREDENTIALS.expires_at >= 0; HELLO.software and ERROR.message may
// be empty.
//
// What this codec does NOT check: which message is allowed in which state of the
// conversation, or in which direction.  That belongs to the two peers; `direction_of()`
// and `may_send()` answer the direction part.  Nor does it compare HELLO versions.
//
// Secrets: Credentials::password is a pgbv::Secret.  The decoder wipes every byte it
// buffered as soon as the frame is consumed, and on reset()/destruction.  A frame
// produced by encode() for a Credentials message contains the password: wipe it with
// wire::wipe() once it has been written.  Error strings produced here never contain any
// byte of a frame's string fields; they name the message, the field and the rule.
//
// Thread safety: the free functions are pure; a FrameDecoder is a plain object (one per
// connection, used from one thread).
//
// Header-only, C++20, no dependency beyond the standard library and glibc.

#ifndef PGBV_WIRE_CODEC_HPP
#define PGBV_WIRE_CODEC_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "pgbv/secret.hpp"
#include "pgbv/wire.h"

namespace pgbv::wire {

inline constexpr std::uint16_t kVersion = PGBV_WIRE_VERSION;
inline constexpr std::size_t kHeaderSize = PGBV_WIRE_HEADER_SIZE;
inline constexpr std::size_t kMaxFrame = PGBV_WIRE_MAX_FRAME;  // type + body

// ---------------------------------------------------------------------------------------
// Messages.  Field meanings and bounds: PROTOCOL.md.

// Both directions: the first frame each side sends.
struct Hello {
    std::uint16_t version = kVersion;
    std::string software;  // <= 64 bytes, e.g. "pgbv-plugin 0.1.0"
    friend bool operator==(const Hello&, const Hello&) = default;
};

// Both directions: the sender is about to close the connection.
struct Error {
    std::uint16_t code = PGBV_ERR_PROTOCOL;  // PGBV_ERR_* (1..5)
    std::string message;                     // <= 512 bytes, never a secret
    friend bool operator==(const Error&, const Error&) = default;
};

// Controller -> plugin: the current credentials of one set.
struct Credentials {
    std::string set;
    std::uint64_t generation = 0;  // the controller's, > 0
    std::string username;
    Secret password;
    std::int64_t expires_at = 0;  // seconds since the epoch, 0 if unknown
    std::uint32_t flags = 0;      // must be 0 in version 1
    friend bool operator==(const Credentials&, const Credentials&) = default;
};

// Controller -> plugin: the snapshot that followed HELLO is complete.
struct SnapshotDone {
    std::uint32_t count = 0;  // number of CREDENTIALS frames in the snapshot
    friend bool operator==(const SnapshotDone&, const SnapshotDone&) = default;
};

// Plugin -> controller: no server connection uses this generation any more.
struct Drained {
    std::string set;
    std::uint64_t generation = 0;  // the controller's
    std::string username;
    friend bool operator==(const Drained&, const Drained&) = default;
};

// Plugin -> controller: PostgreSQL refused a login with this generation.
struct LoginFailed {
    std::string set;
    std::uint64_t generation = 0;  // the controller's
    std::string username;
    std::string sqlstate;  // exactly 5 of [0-9A-Z], e.g. "28P01"
    friend bool operator==(const LoginFailed&, const LoginFailed&) = default;
};

// Move-only, because Credentials holds a Secret.
using Message = std::variant<Hello, Error, Credentials, SnapshotDone, Drained, LoginFailed>;

// A Message or one of its alternatives.  The functions below take either, so that a
// Credentials can be encoded without being copied into a Message.
template <typename T>
concept MessageLike =
        std::is_same_v<T, Message> || std::is_same_v<T, Hello> || std::is_same_v<T, Error> ||
        std::is_same_v<T, Credentials> || std::is_same_v<T, SnapshotDone> ||
        std::is_same_v<T, Drained> || std::is_same_v<T, LoginFailed>;

namespace detail {

// Applies visitor `v` to `m`, whether `m` is a Message or one of its alternatives.
template <typename V, typename M>
decltype(auto) dispatch(V&& v, const M& m) {
    if constexpr (std::is_same_v<M, Message>) {
        return std::visit(std::forward<V>(v), m);
    } else {
        return std::forward<V>(v)(m);
    }
}

}  // namespace detail

// ---------------------------------------------------------------------------------------
// Types and directions.

// Returns the PGBV_MSG_* type byte of `m` (0 for a Message left valueless by an exception).
template <MessageLike M>
std::uint8_t type_of(const M& m) noexcept {
    struct V {
        std::uint8_t operator()(const Hello&) const { return PGBV_MSG_HELLO; }
        std::uint8_t operator()(const Error&) const { return PGBV_MSG_ERROR; }
        std::uint8_t operator()(const Credentials&) const { return PGBV_MSG_CREDENTIALS; }
        std::uint8_t operator()(const SnapshotDone&) const { return PGBV_MSG_SNAPSHOT_DONE; }
        std::uint8_t operator()(const Drained&) const { return PGBV_MSG_DRAINED; }
        std::uint8_t operator()(const LoginFailed&) const { return PGBV_MSG_LOGIN_FAILED; }
    };
    if constexpr (std::is_same_v<M, Message>) {
        // By index rather than std::visit, which may throw (on a valueless variant).
        constexpr std::uint8_t kTypes[] = {PGBV_MSG_HELLO,       PGBV_MSG_ERROR,
                                           PGBV_MSG_CREDENTIALS, PGBV_MSG_SNAPSHOT_DONE,
                                           PGBV_MSG_DRAINED,     PGBV_MSG_LOGIN_FAILED};
        static_assert(std::size(kTypes) == std::variant_size_v<Message>);
        return m.index() < std::size(kTypes) ? kTypes[m.index()] : 0;
    } else {
        return V{}(m);
    }
}

// Returns the protocol name of a type byte ("CREDENTIALS"), or "UNKNOWN".
inline const char* type_name(std::uint8_t type) noexcept {
    switch (type) {
        case PGBV_MSG_HELLO:
            return "HELLO";
        case PGBV_MSG_ERROR:
            return "ERROR";
        case PGBV_MSG_CREDENTIALS:
            return "CREDENTIALS";
        case PGBV_MSG_SNAPSHOT_DONE:
            return "SNAPSHOT_DONE";
        case PGBV_MSG_DRAINED:
            return "DRAINED";
        case PGBV_MSG_LOGIN_FAILED:
            return "LOGIN_FAILED";
        default:
            return "UNKNOWN";
    }
}
template <MessageLike M>
const char* type_name(const M& m) noexcept {
    return type_name(type_of(m));
}

enum class Direction { kBoth, kControllerToPlugin, kPluginToController };
enum class Sender { kPlugin, kController };

// Returns who may send messages of `type`; std::nullopt for an unknown type.
inline std::optional<Direction> direction_of(std::uint8_t type) noexcept {
    switch (type) {
        case PGBV_MSG_HELLO:
        case PGBV_MSG_ERROR:
            return Direction::kBoth;
        case PGBV_MSG_CREDENTIALS:
        case PGBV_MSG_SNAPSHOT_DONE:
            return Direction::kControllerToPlugin;
        case PGBV_MSG_DRAINED:
        case PGBV_MSG_LOGIN_FAILED:
            return Direction::kPluginToController;
        default:
            return std::nullopt;
    }
}

// Returns true if `sender` may send `m` at all (in some state of the conversation).
template <MessageLike M>
bool may_send(Sender sender, const M& m) noexcept {
    const auto direction = direction_of(type_of(m));
    if (!direction) return false;
    switch (*direction) {
        case Direction::kBoth:
            return true;
        case Direction::kControllerToPlugin:
            return sender == Sender::kController;
        case Direction::kPluginToController:
            return sender == Sender::kPlugin;
    }
    return false;
}

// ---------------------------------------------------------------------------------------
// Field rules, shared by encoder and decoder.

// True if `s` contains a NUL byte.
inline bool has_nul(std::string_view s) noexcept {
    return s.find('\0') != std::string_view::npos;
}

// True if `s` is a valid set name: 1-63 bytes of [A-Za-z0-9_.-].
inline bool valid_set_name(std::string_view s) noexcept {
    if (s.empty() || s.size() > PGBV_WIRE_MAX_SET) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '.' || c == '-';
    });
}

// True if `s` is a valid SQLSTATE: exactly 5 of [0-9A-Z].
inline bool valid_sqlstate(std::string_view s) noexcept {
    if (s.size() != PGBV_WIRE_SQLSTATE_LEN) return false;
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z'); });
}

namespace detail {

inline bool valid_text(std::string_view s, std::size_t min, std::size_t max) noexcept {
    return s.size() >= min && s.size() <= max && !has_nul(s);
}

// Each returns a description of the first broken rule, or nullopt.  Descriptions name
// the rule, never the field's value.
inline std::optional<std::string> check_set(const char* msg, std::string_view set) {
    if (valid_set_name(set)) return std::nullopt;
    return std::string(msg) + ": set must be 1-63 bytes of [A-Za-z0-9_.-]";
}
inline std::optional<std::string> check_generation(const char* msg, std::uint64_t g) {
    if (g > 0) return std::nullopt;
    return std::string(msg) + ": generation must be greater than 0";
}
inline std::optional<std::string> check_username(const char* msg, std::string_view u) {
    if (valid_text(u, 1, PGBV_WIRE_MAX_USERNAME)) return std::nullopt;
    return std::string(msg) + ": username must be 1-127 bytes without NUL";
}

}  // namespace detail

// Returns nullopt if `m` obeys every field rule of PROTOCOL.md, else a one-line
// description of the first rule it breaks (never containing a field's value).
template <MessageLike M>
std::optional<std::string> validation_error(const M& m) {
    using detail::check_generation;
    using detail::check_set;
    using detail::check_username;
    using detail::valid_text;
    using R = std::optional<std::string>;
    struct V {
        R operator()(const Hello& h) const {
            if (h.version == 0) return "HELLO: version must be greater than 0";
            if (!valid_text(h.software, 0, PGBV_WIRE_MAX_SOFTWARE)) {
                return "HELLO: software must be at most 64 bytes without NUL";
            }
            return std::nullopt;
        }
        R operator()(const Error& e) const {
            if (e.code < PGBV_ERR_VERSION || e.code > PGBV_ERR_SHUTTING_DOWN) {
                return "ERROR: code must be 1-5";
            }
            if (!valid_text(e.message, 0, PGBV_WIRE_MAX_ERROR_MESSAGE)) {
                return "ERROR: message must be at most 512 bytes without NUL";
            }
            return std::nullopt;
        }
        R operator()(const Credentials& c) const {
            if (auto e = check_set("CREDENTIALS", c.set)) return e;
            if (auto e = check_generation("CREDENTIALS", c.generation)) return e;
            if (auto e = check_username("CREDENTIALS", c.username)) return e;
            if (!valid_text(c.password.view(), 1, PGBV_WIRE_MAX_PASSWORD)) {
                return "CREDENTIALS: password must be 1-1024 bytes without NUL";
            }
            if (c.expires_at < 0) return "CREDENTIALS: expires_at must not be negative";
            if (c.flags != 0) return "CREDENTIALS: flags must be 0 in protocol version 1";
            return std::nullopt;
        }
        R operator()(const SnapshotDone&) const { return std::nullopt; }
        R operator()(const Drained& d) const {
            if (auto e = check_set("DRAINED", d.set)) return e;
            if (auto e = check_generation("DRAINED", d.generation)) return e;
            return check_username("DRAINED", d.username);
        }
        R operator()(const LoginFailed& l) const {
            if (auto e = check_set("LOGIN_FAILED", l.set)) return e;
            if (auto e = check_generation("LOGIN_FAILED", l.generation)) return e;
            if (auto e = check_username("LOGIN_FAILED", l.username)) return e;
            if (!valid_sqlstate(l.sqlstate)) {
                return "LOGIN_FAILED: sqlstate must be exactly 5 of [0-9A-Z]";
            }
            return std::nullopt;
        }
    };
    return detail::dispatch(V{}, m);
}

// ---------------------------------------------------------------------------------------
// Encoding.

// Thrown by encode() for a message that breaks a field rule; what() is validation_error().
class EncodeError : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

// Overwrites a buffer that held a frame (e.g. a CREDENTIALS frame) and empties it.
inline void wipe(std::vector<std::uint8_t>& frame) noexcept {
    secure_wipe(frame.data(), frame.size());
    frame.clear();
}

namespace detail {

// Appends big-endian fields to a buffer reserved in advance (so that a password never
// lands in a buffer that is later reallocated and freed unwiped).
class Writer {
public:
    explicit Writer(std::vector<std::uint8_t>& out) : out_(out) {}
    void u8(std::uint8_t v) { out_.push_back(v); }
    void u16(std::uint16_t v) { be(v, 2); }
    void u32(std::uint32_t v) { be(v, 4); }
    void u64(std::uint64_t v) { be(v, 8); }
    void i64(std::int64_t v) { be(static_cast<std::uint64_t>(v), 8); }
    void str(std::string_view s) {
        u16(static_cast<std::uint16_t>(s.size()));
        out_.insert(out_.end(), s.begin(), s.end());
    }

private:
    void be(std::uint64_t v, int bytes) {
        for (int i = bytes - 1; i >= 0; --i)
            out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    }
    std::vector<std::uint8_t>& out_;
};

// Number of bytes after the length field (type + body) that `m` encodes to.
template <MessageLike M>
std::size_t payload_size(const M& m) {
    struct V {
        std::size_t operator()(const Hello& h) const { return 1 + 2 + 2 + h.software.size(); }
        std::size_t operator()(const Error& e) const { return 1 + 2 + 2 + e.message.size(); }
        std::size_t operator()(const Credentials& c) const {
            return 1 + (2 + c.set.size()) + 8 + (2 + c.username.size()) + (2 + c.password.size()) +
                   8 + 4;
        }
        std::size_t operator()(const SnapshotDone&) const { return 1 + 4; }
        std::size_t operator()(const Drained& d) const {
            return 1 + (2 + d.set.size()) + 8 + (2 + d.username.size());
        }
        std::size_t operator()(const LoginFailed& l) const {
            return 1 + (2 + l.set.size()) + 8 + (2 + l.username.size()) + (2 + l.sqlstate.size());
        }
    };
    return detail::dispatch(V{}, m);
}

}  // namespace detail

// Returns the whole frame for `m`: u32 length, type byte, body.
// Throws EncodeError if `m` breaks a field rule (see validation_error()); may throw
// std::bad_alloc.  Nothing else.
template <MessageLike M>
std::vector<std::uint8_t> encode(const M& m) {
    if (auto error = validation_error(m)) throw EncodeError(*error);
    const std::size_t payload = detail::payload_size(m);
    if (payload > kMaxFrame) {
        std::string reason = type_name(m);
        throw EncodeError(reason + ": frame too long");
    }

    std::vector<std::uint8_t> out;
    out.reserve(kHeaderSize + payload);
    detail::Writer w(out);
    w.u32(static_cast<std::uint32_t>(payload));
    w.u8(type_of(m));
    struct V {
        detail::Writer& w;
        void operator()(const Hello& h) const {
            w.u16(h.version);
            w.str(h.software);
        }
        void operator()(const Error& e) const {
            w.u16(e.code);
            w.str(e.message);
        }
        void operator()(const Credentials& c) const {
            w.str(c.set);
            w.u64(c.generation);
            w.str(c.username);
            w.str(c.password.view());
            w.i64(c.expires_at);
            w.u32(c.flags);
        }
        void operator()(const SnapshotDone& s) const { w.u32(s.count); }
        void operator()(const Drained& d) const {
            w.str(d.set);
            w.u64(d.generation);
            w.str(d.username);
        }
        void operator()(const LoginFailed& l) const {
            w.str(l.set);
            w.u64(l.generation);
            w.str(l.username);
            w.str(l.sqlstate);
        }
    };
    detail::dispatch(V{w}, m);
    return out;
}

// ---------------------------------------------------------------------------------------
// Decoding.

// The outcome of decoding: a message, a request for more bytes, or a protocol error.
struct Decoded {
    enum class Status { kNeedMore, kMessage, kError };
    Status status = Status::kNeedMore;
    std::optional<Message> message;  // set iff status == kMessage
    std::string error;  // set iff status == kError; never contains a string field's bytes

    bool need_more() const noexcept { return status == Status::kNeedMore; }
    bool ok() const noexcept { return status == Status::kMessage; }
    bool failed() const noexcept { return status == Status::kError; }

    static Decoded more() { return Decoded{}; }
    static Decoded of(Message m) { return Decoded{Status::kMessage, std::move(m), {}}; }
    static Decoded fail(std::string reason) {
        return Decoded{Status::kError, std::nullopt, std::move(reason)};
    }
};

namespace detail {

// Reads big-endian fields from one frame's body, remembering the first overrun.
class Reader {
public:
    Reader(std::span<const std::uint8_t> body, const char* msg) : p_(body), msg_(msg) {}

    std::uint16_t u16(const char* field) { return static_cast<std::uint16_t>(be(field, 2)); }
    std::uint32_t u32(const char* field) { return static_cast<std::uint32_t>(be(field, 4)); }
    std::uint64_t u64(const char* field) { return be(field, 8); }
    std::int64_t i64(const char* field) { return static_cast<std::int64_t>(be(field, 8)); }
    std::string_view str(const char* field) {
        const std::size_t n = u16(field);
        if (!take(field, n)) return {};
        return {reinterpret_cast<const char*>(p_.data() + pos_ - n), n};
    }

    // The first problem found, or nullopt: a field running past the frame, else bytes
    // left over after the last field.
    std::optional<std::string> finish() const {
        if (error_) return error_;
        if (pos_ != p_.size()) {
            return std::string(msg_) + ": " + std::to_string(p_.size() - pos_) +
                   " bytes left after the last field";
        }
        return std::nullopt;
    }

private:
    bool take(const char* field, std::size_t n) {
        if (error_) return false;
        if (p_.size() - pos_ < n) {
            error_ = std::string(msg_) + ": field '" + field + "' runs past the end of the frame";
            return false;
        }
        pos_ += n;
        return true;
    }
    std::uint64_t be(const char* field, int bytes) {
        if (!take(field, static_cast<std::size_t>(bytes))) return 0;
        std::uint64_t v = 0;
        for (std::size_t i = pos_ - bytes; i < pos_; ++i)
            v = (v << 8) | p_[i];
        return v;
    }

    std::span<const std::uint8_t> p_;
    const char* msg_;
    std::size_t pos_ = 0;
    std::optional<std::string> error_;
};

}  // namespace detail

// Decodes one frame's payload (the type byte and body, without the length field).
// Returns kMessage or kError, never kNeedMore.
inline Decoded decode_payload(std::span<const std::uint8_t> payload) {
    if (payload.empty()) return Decoded::fail("empty frame (no message type)");
    if (payload.size() > kMaxFrame) {
        return Decoded::fail("frame of " + std::to_string(payload.size()) +
                             " bytes exceeds the limit of 8192");
    }
    const std::uint8_t type = payload[0];
    const char* name = type_name(type);
    detail::Reader r(payload.subspan(1), name);
    std::optional<Message> m;
    switch (type) {
        case PGBV_MSG_HELLO: {
            Hello h;
            h.version = r.u16("version");
            h.software = r.str("software");
            m.emplace(std::move(h));
            break;
        }
        case PGBV_MSG_ERROR: {
            Error e;
            e.code = r.u16("code");
            e.message = r.str("message");
            m.emplace(std::move(e));
            break;
        }
        case PGBV_MSG_CREDENTIALS: {
            Credentials c;
            c.set = r.str("set");
            c.generation = r.u64("generation");
            c.username = r.str("username");
            c.password.assign(r.str("password"));
            c.expires_at = r.i64("expires_at");
            c.flags = r.u32("flags");
            m.emplace(std::move(c));
            break;
        }
        case PGBV_MSG_SNAPSHOT_DONE: {
            SnapshotDone s;
            s.count = r.u32("count");
            m.emplace(s);
            break;
        }
        case PGBV_MSG_DRAINED: {
            Drained d;
            d.set = r.str("set");
            d.generation = r.u64("generation");
            d.username = r.str("username");
            m.emplace(std::move(d));
            break;
        }
        case PGBV_MSG_LOGIN_FAILED: {
            LoginFailed l;
            l.set = r.str("set");
            l.generation = r.u64("generation");
            l.username = r.str("username");
            l.sqlstate = r.str("sqlstate");
            m.emplace(std::move(l));
            break;
        }
        default: {
            static constexpr char kHex[] = "0123456789abcdef";
            std::string reason = "unknown message type 0x";
            reason += kHex[type >> 4];
            reason += kHex[type & 0xf];
            return Decoded::fail(std::move(reason));
        }
    }
    if (auto error = r.finish()) return Decoded::fail(std::move(*error));
    if (auto error = validation_error(*m)) return Decoded::fail(std::move(*error));
    return Decoded::of(std::move(*m));
}

// Splits a byte stream into frames and decodes them.
//
// Usage, per connection:
//     decoder.feed(bytes, n);                  // whatever read() returned
//     for (;;) {
//         Decoded d = decoder.next();
//         if (d.need_more()) break;            // wait for more bytes
//         if (d.failed()) { log(d.error); close(); break; }
//         handle(std::move(*d.message));
//     }
//
// The length field is checked as soon as its 4 bytes have arrived, before any of the body
// is buffered or waited for, so a bad length fails at once.  Errors are sticky: after the first
// one, feed() drops its input and next() returns the same error until reset().  Buffered
// bytes are wiped when a frame is consumed, on error, on reset() and on destruction;
// memory is never reallocated without wiping the old block.
class FrameDecoder {
public:
    FrameDecoder() = default;
    ~FrameDecoder() { release(); }
    FrameDecoder(const FrameDecoder&) = delete;
    FrameDecoder& operator=(const FrameDecoder&) = delete;

    // Appends `bytes` to the stream.  Holds at most what was fed and not yet consumed by
    // next(); callers bound memory by calling next() until kNeedMore after each feed().
    void feed(std::span<const std::uint8_t> bytes) {
        if (failed() || bytes.empty()) return;
        // Complete a pending length field first and check it, so that a bad length fails
        // before a single byte of its body is buffered.
        const std::size_t have = end_ - begin_;
        if (have < kHeaderSize) {
            const std::size_t n = std::min(kHeaderSize - have, bytes.size());
            append(bytes.first(n));
            bytes = bytes.subspan(n);
            if (auto error = bad_length()) {
                fail(std::move(*error));
                return;
            }
        }
        if (!bytes.empty()) append(bytes);
    }
    void feed(const void* bytes, std::size_t n) {
        feed(std::span<const std::uint8_t>(static_cast<const std::uint8_t*>(bytes), n));
    }

    // Returns the next message if a whole frame is buffered, kNeedMore if not, or
    // kError (sticky) if the stream broke a rule of PROTOCOL.md.
    Decoded next() {
        if (failed()) return Decoded::fail(error_);
        if (auto error = bad_length()) {
            fail(std::move(*error));
            return Decoded::fail(error_);
        }
        const std::size_t have = end_ - begin_;
        if (have < kHeaderSize) return Decoded::more();
        const std::size_t length = frame_length();
        if (have < kHeaderSize + length) return Decoded::more();

        Decoded d = decode_payload(
                std::span<const std::uint8_t>(buf_.get() + begin_ + kHeaderSize, length));
        secure_wipe(buf_.get() + begin_, kHeaderSize + length);
        begin_ += kHeaderSize + length;
        if (begin_ == end_) begin_ = end_ = 0;
        if (d.failed()) fail(d.error);
        return d;
    }

    // True once the stream has broken a rule; error() says which.
    bool failed() const noexcept { return !error_.empty(); }
    const std::string& error() const noexcept { return error_; }

    // Bytes fed but not yet consumed.
    std::size_t buffered() const noexcept { return end_ - begin_; }

    // Wipes and forgets everything, errors included: ready for a new connection.
    void reset() {
        release();
        error_.clear();
    }

private:
    static constexpr std::size_t kInitialCapacity = 1024;

    std::uint32_t frame_length() const noexcept {
        const std::uint8_t* p = buf_.get() + begin_;
        return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
               (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
    }

    std::optional<std::string> bad_length() const {
        if (end_ - begin_ < kHeaderSize) return std::nullopt;
        const std::uint32_t length = frame_length();
        if (length == 0) return "frame length 0 (must be 1 to 8192)";
        if (length > kMaxFrame) {
            return "frame length " + std::to_string(length) + " exceeds the limit of 8192";
        }
        return std::nullopt;
    }

    void append(std::span<const std::uint8_t> bytes) {
        reserve(bytes.size());
        std::memcpy(buf_.get() + end_, bytes.data(), bytes.size());
        end_ += bytes.size();
    }

    // Makes room for `n` more bytes after end_, wiping whatever memory it gives up.
    void reserve(std::size_t n) {
        const std::size_t unread = end_ - begin_;
        if (capacity_ - end_ >= n) return;
        if (capacity_ - unread >= n) {
            std::memmove(buf_.get(), buf_.get() + begin_, unread);
            secure_wipe(buf_.get() + unread, end_ - unread);
        } else {
            const std::size_t capacity = std::max({kInitialCapacity, 2 * capacity_, unread + n});
            auto fresh = std::make_unique<std::uint8_t[]>(capacity);
            if (unread > 0) std::memcpy(fresh.get(), buf_.get() + begin_, unread);
            secure_wipe(buf_.get(), capacity_);
            buf_ = std::move(fresh);
            capacity_ = capacity;
        }
        begin_ = 0;
        end_ = unread;
    }

    void fail(std::string reason) {
        error_ = std::move(reason);
        if (error_.empty()) error_ = "protocol error";
        release();
    }

    void release() noexcept {
        secure_wipe(buf_.get(), capacity_);
        buf_.reset();
        capacity_ = begin_ = end_ = 0;
    }

    std::unique_ptr<std::uint8_t[]> buf_;
    std::size_t capacity_ = 0;
    std::size_t begin_ = 0;  // first unread byte
    std::size_t end_ = 0;    // one past the last fed byte
    std::string error_;
};

}  // namespace pgbv::wire

#endif  // PGBV_WIRE_CODEC_HPP
