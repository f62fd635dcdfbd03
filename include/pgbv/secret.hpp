// A move-only string for passwords that wipes its memory and never prints its value.
//
// pgbv::Secret holds one secret (a database password, a token) in a heap buffer of its
// own.  The bytes are overwritten with zeros (explicit_bzero, which the compiler may not
// elide) when the Secret is destroyed, cleared, assigned a new value or moved from.
// Moving transfers the buffer, so the bytes are never copied by a move.  There is no
// implicit conversion to std::string and streaming a Secret writes "<redacted>", so a
// secret cannot reach a log line by accident.
//
// Thread safety: like std::string; distinct objects may be used from distinct threads.
//
// Header-only; needs nothing but glibc (explicit_bzero, glibc >= 2.25).

#ifndef PGBV_SECRET_HPP
#define PGBV_SECRET_HPP

#include <string.h>  // explicit_bzero

#include <cstddef>
#include <cstring>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

namespace pgbv {

// Overwrites `len` bytes at `p` with zeros in a way the optimiser keeps.
inline void secure_wipe(void* p, std::size_t len) noexcept {
    if (p != nullptr && len > 0) explicit_bzero(p, len);
}

// Wipes the characters of `s` (its whole capacity) and empties it.  For the few places
// where a secret passed through a std::string (e.g. a parsed input line).
inline void secure_wipe(std::string& s) noexcept {
    // The bytes between size() and capacity() may hold an older, longer value.
    s.resize(s.capacity());
    secure_wipe(s.data(), s.size());
    s.clear();
}

class Secret {
public:
    // An empty secret.  Allocates nothing.
    Secret() noexcept = default;

    // Copies `value` into a buffer owned by the new Secret.  The caller remains
    // responsible for wiping its own copy.
    explicit Secret(std::string_view value) { assign(value); }

    // Takes the characters of `value` and wipes `value` (its whole capacity).
    static Secret take(std::string&& value) {
        Secret s(value);
        secure_wipe(value);
        return s;
    }

    Secret(const Secret&) = delete;
    Secret& operator=(const Secret&) = delete;

    // Transfers the buffer; `other` becomes empty.
    Secret(Secret&& other) noexcept
        : data_(std::move(other.data_)), size_(std::exchange(other.size_, 0)) {}

    // Wipes the current value, then transfers `other`'s buffer; `other` becomes empty.
    Secret& operator=(Secret&& other) noexcept {
        if (this != &other) {
            clear();
            data_ = std::move(other.data_);
            size_ = std::exchange(other.size_, 0);
        }
        return *this;
    }

    ~Secret() { clear(); }

    // Returns an independent copy.  Explicit so that copies are visible in the code.
    Secret clone() const { return Secret(view()); }

    // Replaces the value with a copy of `value`; the old value is wiped.
    // `value` may alias the current value.
    void assign(std::string_view value) {
        std::unique_ptr<char[]> fresh;
        if (!value.empty()) {
            fresh = std::make_unique<char[]>(value.size());
            std::memcpy(fresh.get(), value.data(), value.size());
        }
        const std::size_t fresh_size = value.size();
        clear();
        data_ = std::move(fresh);
        size_ = fresh_size;
    }

    // Wipes and frees the value; the Secret becomes empty.
    void clear() noexcept {
        if (data_) secure_wipe(data_.get(), size_);
        data_.reset();
        size_ = 0;
    }

    // The secret's bytes.  Valid until the Secret is modified, moved from or destroyed.
    // Whoever copies them elsewhere must wipe that copy.
    std::string_view view() const noexcept {
        return data_ ? std::string_view(data_.get(), size_) : std::string_view();
    }
    const char* data() const noexcept { return data_ ? data_.get() : ""; }
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }

    // Compares in time that depends only on the lengths, not on where the bytes differ.
    bool equals(std::string_view other) const noexcept {
        if (other.size() != size_) return false;
        unsigned char diff = 0;
        const char* mine = data();
        for (std::size_t i = 0; i < size_; ++i) {
            diff |= static_cast<unsigned char>(mine[i] ^ other[i]);
        }
        return diff == 0;
    }

    friend bool operator==(const Secret& a, const Secret& b) noexcept { return a.equals(b.view()); }

    // Never prints the value; lets logging and test frameworks show that one is there.
    friend std::ostream& operator<<(std::ostream& os, const Secret&) { return os << "<redacted>"; }

private:
    std::unique_ptr<char[]> data_;
    std::size_t size_ = 0;
};

}  // namespace pgbv

#endif  // PGBV_SECRET_HPP
