// Parsing of credential_plugin_options, the plugin's settings from pgbouncer.ini.
#include "plugin/options.hpp"

#include <sys/un.h>

#include <charconv>
#include <cstdint>
#include <set>

namespace pgbv::plugin {
namespace {

constexpr const char* kKnownKeys =
        "socket, reconnect_min_ms, reconnect_max_ms, max_pending_reports, handshake_timeout_ms";

// Parses a decimal number in [min, max]; on failure returns a reason naming `key`.
std::variant<std::uint64_t, std::string> parse_number(std::string_view key, std::string_view value,
                                                      std::uint64_t min, std::uint64_t max) {
    std::uint64_t n = 0;
    const char* end = value.data() + value.size();
    auto [ptr, ec] = std::from_chars(value.data(), end, n);
    if (ec == std::errc::result_out_of_range ||
        (ec == std::errc() && ptr == end && (n < min || n > max))) {
        return "credential_plugin_options: " + std::string(key) + " must be between " +
               std::to_string(min) + " and " + std::to_string(max) + ", got '" +
               std::string(value) + "'";
    }
    if (ec != std::errc() || ptr != end) {
        return "credential_plugin_options: " + std::string(key) + " must be a whole number, got '" +
               std::string(value) + "'";
    }
    return n;
}

}  // namespace

std::variant<Options, std::string> parse_options(std::string_view text) {
    Options options;
    std::set<std::string, std::less<>> seen;
    std::size_t pos = 0;
    while (pos < text.size()) {
        if (text[pos] == ' ' || text[pos] == '\t') {
            ++pos;
            continue;
        }
        std::size_t end = text.find_first_of(" \t", pos);
        if (end == std::string_view::npos) end = text.size();
        const std::string_view token = text.substr(pos, end - pos);
        pos = end;

        const std::size_t eq = token.find('=');
        const std::string_view key = token.substr(0, eq);
        if (key.empty()) {
            return std::string("credential_plugin_options: '") + std::string(token) +
                   "' has no key (expected key=value)";
        }
        if (eq == std::string_view::npos || eq + 1 == token.size()) {
            return "credential_plugin_options: " + std::string(key) + " has no value (expected " +
                   std::string(key) + "=VALUE)";
        }
        const std::string_view value = token.substr(eq + 1);
        if (!seen.emplace(key).second) {
            return "credential_plugin_options: " + std::string(key) + " is given twice";
        }

        if (key == "socket") {
            if (value.front() != '/') {
                return "credential_plugin_options: socket must be an absolute path, got '" +
                       std::string(value) + "'";
            }
            if (value.size() >= sizeof(sockaddr_un{}.sun_path)) {
                return "credential_plugin_options: socket path is " + std::to_string(value.size()) +
                       " bytes long; Unix socket paths are " + "limited to " +
                       std::to_string(sizeof(sockaddr_un{}.sun_path) - 1);
            }
            options.socket_path = value;
            continue;
        }

        std::uint64_t min = 1;
        std::uint64_t max = 3'600'000;  // an hour, for every delay
        if (key == "max_pending_reports") max = 1'000'000;
        if (key != "reconnect_min_ms" && key != "reconnect_max_ms" &&
            key != "max_pending_reports" && key != "handshake_timeout_ms") {
            return "credential_plugin_options: unknown key '" + std::string(key) +
                   "' (known keys: " + kKnownKeys + ")";
        }
        auto parsed = parse_number(key, value, min, max);
        if (auto* reason = std::get_if<std::string>(&parsed)) return std::move(*reason);
        const std::uint64_t n = std::get<std::uint64_t>(parsed);
        if (key == "reconnect_min_ms") {
            options.reconnect_min = std::chrono::milliseconds(n);
        } else if (key == "reconnect_max_ms") {
            options.reconnect_max = std::chrono::milliseconds(n);
        } else if (key == "max_pending_reports") {
            options.max_pending_reports = static_cast<std::size_t>(n);
        } else {
            options.handshake_timeout = std::chrono::milliseconds(n);
        }
    }

    if (options.socket_path.empty()) {
        return std::string(
                "credential_plugin_options: socket is required "
                "(e.g. socket=/run/pgbv/plugin.sock, the plugin socket of pgbv-controller)");
    }
    if (options.reconnect_max < options.reconnect_min) {
        return "credential_plugin_options: reconnect_max_ms (" +
               std::to_string(options.reconnect_max.count()) +
               ") must not be less than reconnect_min_ms (" +
               std::to_string(options.reconnect_min.count()) + ")";
    }
    return options;
}

}  // namespace pgbv::plugin
