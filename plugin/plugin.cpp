// The credential plugin behind the C ABI: the store, the controller client and the host.
#include "plugin/plugin.hpp"

#include <chrono>
#include <cstring>
#include <random>
#include <utility>
#include <variant>

namespace pgbv::plugin {
namespace {

std::int64_t now_us() {
    const auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
    return std::chrono::duration_cast<std::chrono::microseconds>(since_epoch).count();
}

// A set name as the host passed it, or nullopt if no set can have that name.
std::optional<std::string_view> set_name(const char* set) {
    if (set == nullptr) return std::nullopt;
    const std::string_view name(set, ::strnlen(set, PGBV_MAX_SET_NAME));
    if (!wire::valid_set_name(name)) return std::nullopt;
    return name;
}

std::uint64_t random_seed() {
    std::random_device device;
    return (std::uint64_t{device()} << 32) ^ device();
}

}  // namespace

std::unique_ptr<Plugin> Plugin::create(const pgbv_host_api* host, std::string_view options,
                                       std::string* error) {
    if (host == nullptr) {
        *error = "PgBouncer passed no host API to the credential plugin";
        return nullptr;
    }
    if (host->abi_version != PGBV_ABI_VERSION) {
        *error = "PgBouncer speaks credential plugin ABI version " +
                 std::to_string(host->abi_version) + " but libpgbv.so speaks version " +
                 std::to_string(PGBV_ABI_VERSION) + "; install a libpgbv.so built for it";
        return nullptr;
    }
    if (host->struct_size < sizeof(pgbv_host_api)) {
        *error = "PgBouncer's host API is " + std::to_string(host->struct_size) +
                 " bytes, libpgbv.so needs " + std::to_string(sizeof(pgbv_host_api)) +
                 "; install a libpgbv.so built for this PgBouncer";
        return nullptr;
    }
    if (host->event_base == nullptr || host->log == nullptr ||
        host->credentials_changed == nullptr) {
        *error = "PgBouncer's host API lacks event_base, log or credentials_changed";
        return nullptr;
    }
    auto parsed = parse_options(options);
    if (auto* reason = std::get_if<std::string>(&parsed)) {
        *error = std::move(*reason);
        return nullptr;
    }
    auto plugin = std::make_unique<Plugin>(Key{}, *host, std::move(std::get<Options>(parsed)));
    try {
        plugin->client_.start();
    } catch (const std::exception& e) {
        *error = e.what();
        return nullptr;
    }
    plugin->log_.info("libpgbv.so started; connecting to pgbv-controller at " +
                      plugin->options_.socket_path);
    return plugin;
}

Plugin::Plugin(Key, const pgbv_host_api& host, Options options)
    : host_{host.host_data, host.log, host.credentials_changed},
      log_([this](int level, const std::string& message) {
          host_.log(host_.data, level, message.c_str());
      }),
      options_(std::move(options)),
      client_(host.event_base, options_, log_, *this, random_seed()) {}

Plugin::~Plugin() {
    try {
        shutdown();
    } catch (...) {
        // Only logging can throw here; the store's secrets are wiped by its destructor.
    }
}

int Plugin::get_credentials(const char* set, pgbv_credentials* out) const noexcept {
    if (out == nullptr) return PGBV_ERROR;
    out->generation = 0;
    out->received_at_us = 0;
    out->expires_at = 0;
    out->username[0] = '\0';
    out->password[0] = '\0';
    const auto name = set_name(set);
    if (!name) return PGBV_ERROR;
    const CurrentCredentials* current = store_.find(*name);
    if (current == nullptr) return PGBV_NOT_FOUND;

    // The wire bounds (127, 1024) are below the ABI buffers (128, 2048); checked anyway.
    static_assert(PGBV_WIRE_MAX_USERNAME < PGBV_MAX_USERNAME);
    static_assert(PGBV_WIRE_MAX_PASSWORD < PGBV_MAX_PASSWORD);
    const std::string_view user = current->username;
    const std::string_view password = current->password.view();
    if (user.size() >= PGBV_MAX_USERNAME || password.size() >= PGBV_MAX_PASSWORD) {
        return PGBV_ERROR;
    }
    out->generation = current->generation;
    out->received_at_us = current->received_at_us;
    out->expires_at = current->expires_at;
    std::memcpy(out->username, user.data(), user.size());
    out->username[user.size()] = '\0';
    std::memcpy(out->password, password.data(), password.size());
    out->password[password.size()] = '\0';
    return PGBV_OK;
}

void Plugin::report_drained(const char* set, std::uint64_t generation) {
    const auto name = set_name(set);
    if (!name) {
        log_.warning(
                "PgBouncer reported a drained generation of an invalid credential set "
                "name; ignoring it");
        return;
    }
    const auto origin = store_.origin(*name, generation);
    const std::string what = "generation " + std::to_string(generation) + " of credential set '" +
                             std::string(*name) + "'";
    if (!origin) {
        log_.warning("PgBouncer reported " + what +
                     " drained, but the plugin does not know that generation (reported "
                     "before, or too old); ignoring it");
        return;
    }
    if (origin->current) {
        log_.warning("PgBouncer reported " + what +
                     " drained while it is still current; not telling pgbv-controller, "
                     "which would revoke credentials in use");
        return;
    }
    log_.debug("reporting " + what + " (user '" + origin->username + "') drained");
    client_.send_report(
            wire::Drained{std::string(*name), origin->controller_generation, origin->username});
    store_.forget(*name, generation);
}

void Plugin::report_login_failed(const char* set, std::uint64_t generation, const char* sqlstate) {
    const auto name = set_name(set);
    if (!name) {
        log_.warning(
                "PgBouncer reported a failed login for an invalid credential set name; "
                "ignoring it");
        return;
    }
    const std::string what = "generation " + std::to_string(generation) + " of credential set '" +
                             std::string(*name) + "'";
    const std::string_view state = sqlstate == nullptr
                                           ? std::string_view()
                                           : std::string_view(sqlstate, ::strnlen(sqlstate, 6));
    if (!wire::valid_sqlstate(state)) {
        log_.warning("PgBouncer reported a failed login with " + what +
                     " but no valid SQLSTATE; ignoring it");
        return;
    }
    const auto origin = store_.origin(*name, generation);
    if (!origin) {
        log_.warning("PgBouncer reported a failed login with " + what +
                     ", which the plugin does not know; ignoring it");
        return;
    }
    log_.warning("PostgreSQL refused login of user '" + origin->username + "' (" + what +
                 ", SQLSTATE " + std::string(state) + "); asking pgbv-controller for fresh " +
                 "credentials");
    client_.send_report(wire::LoginFailed{std::string(*name), origin->controller_generation,
                                          origin->username, std::string(state)});
}

void Plugin::shutdown() {
    if (shut_down_) return;
    shut_down_ = true;
    client_.stop();
    store_.clear();
    log_.info("libpgbv.so stopped; its credentials are wiped from memory");
}

void Plugin::on_credentials(wire::Credentials&& credentials) {
    const std::string set = credentials.set;
    const std::uint64_t controller_generation = credentials.generation;
    const auto applied = store_.apply(std::move(credentials), now_us());
    const CurrentCredentials* current = store_.find(set);
    if (applied == CredentialStore::Applied::kUnchanged || current == nullptr) {
        log_.debug("credential set '" + set + "': controller generation " +
                   std::to_string(controller_generation) +
                   " has the same user and password; "
                   "keeping generation " +
                   std::to_string(current ? current->generation : 0));
        return;
    }
    // PgBouncer logs the change itself ("... is now current"); this adds the mapping.
    log_.debug("credential set '" + set + "': new generation " +
               std::to_string(current->generation) + " (user '" + current->username +
               "', controller generation " + std::to_string(controller_generation) + ")");
    // The whole frame is applied; the host may now re-enter get_credentials/report_*.
    host_.credentials_changed(host_.data, set.c_str());
}

}  // namespace pgbv::plugin
