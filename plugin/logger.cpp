// The plugin's log: one-line messages handed to the host (PgBouncer's log).
#include "plugin/logger.hpp"

namespace pgbv::plugin {

void Logger::log(int level, const std::string& message) const noexcept {
    try {
        if (sink_) sink_(level, message);
    } catch (...) {
        // A log line is never worth failing for.
    }
}

std::string printable(std::string_view untrusted, std::size_t max_bytes) {
    std::string out;
    const bool truncated = untrusted.size() > max_bytes;
    if (truncated) untrusted = untrusted.substr(0, max_bytes);
    out.reserve(untrusted.size() + 3);
    for (char c : untrusted) {
        const auto u = static_cast<unsigned char>(c);
        out.push_back(u >= 0x20 && u < 0x7f ? c : '?');
    }
    if (truncated) out += "...";
    return out;
}

}  // namespace pgbv::plugin
