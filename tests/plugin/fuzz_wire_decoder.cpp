// libFuzzer target for the wire decoder: any byte stream, in any chunking, must decode
// without crashing, identically whatever the chunking, and what decodes must re-encode
// to the same bytes.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "pgbv/wire_codec.hpp"

namespace {

struct Outcome {
    std::vector<std::vector<std::uint8_t>> frames;  // re-encoded messages
    std::string error;
};

// Decodes `data` fed in chunks whose sizes come from a generator seeded with `seed`
// (seed 0: all at once).
Outcome decode(const std::uint8_t* data, std::size_t size, std::uint32_t seed) {
    using pgbv::wire::Decoded;
    using pgbv::wire::encode;
    using pgbv::wire::FrameDecoder;
    Outcome out;
    FrameDecoder decoder;
    std::size_t off = 0;
    std::uint32_t state = seed;
    while (off < size || seed == 0) {
        std::size_t n = size - off;
        if (seed != 0) {
            state = state * 1664525u + 1013904223u;
            n = std::min<std::size_t>(n, 1 + (state >> 16) % 300);
        }
        decoder.feed(data + off, n);
        off += n;
        for (;;) {
            Decoded d = decoder.next();
            if (d.need_more()) break;
            if (d.failed()) {
                if (d.error.empty()) std::abort();
                out.error = d.error;
                return out;
            }
            // Whatever the decoder accepts obeys every rule, so it must encode.
            std::vector<std::uint8_t> frame = encode(*d.message);
            // Decoding the re-encoded frame gives the same message back.
            FrameDecoder again;
            again.feed(frame);
            Decoded twice = again.next();
            if (!twice.ok() || !(*twice.message == *d.message)) std::abort();
            out.frames.push_back(std::move(frame));
        }
        if (seed == 0) break;
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const Outcome whole = decode(data, size, 0);
    const std::uint32_t seed =
            1 + static_cast<std::uint32_t>(size) * 2654435761u + (size > 0 ? data[0] : 0);
    const Outcome chunked = decode(data, size, seed);
    if (whole.error != chunked.error || whole.frames != chunked.frames) std::abort();

    // The accepted frames are exactly the start of the input.
    std::size_t off = 0;
    for (const auto& frame : whole.frames) {
        if (off + frame.size() > size) std::abort();
        if (!std::equal(frame.begin(), frame.end(), data + off)) std::abort();
        off += frame.size();
    }
    return 0;
}
