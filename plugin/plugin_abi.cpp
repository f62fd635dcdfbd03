// The C entry points of libpgbv.so (plugin_abi.h): adapt C calls, catch every exception.
#include "pgbv/plugin_abi.h"

#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <type_traits>

#include "plugin/plugin.hpp"

#define PGBV_EXPORT __attribute__((visibility("default")))

extern "C" {
PGBV_EXPORT extern const uint32_t pgbv_abi_version;
const uint32_t pgbv_abi_version = PGBV_ABI_VERSION;

PGBV_EXPORT int pgbv_plugin_init(const struct pgbv_host_api* host, const char* options,
                                 struct pgbv_plugin_api* plugin, char* errbuf, size_t errbuf_len);
}

static_assert(std::is_same_v<decltype(&pgbv_plugin_init), pgbv_plugin_init_fn>);

namespace {

using pgbv::plugin::Plugin;

Plugin* self(void* plugin_data) {
    return static_cast<Plugin*>(plugin_data);
}

// Runs `f`; an exception is logged through the plugin's host log and `on_exception`
// returned instead, so that nothing unwinds into PgBouncer.
template <typename F, typename R>
R guarded(void* plugin_data, const char* call, R on_exception, F&& f) noexcept {
    const char* what = "unknown exception";
    std::string text;
    try {
        return f();
    } catch (const std::exception& e) {
        try {
            text = e.what();
            what = text.c_str();
        } catch (...) {
        }
    } catch (...) {
    }
    if (plugin_data != nullptr) {
        char line[512];
        std::snprintf(line, sizeof line, "internal error in libpgbv.so's %s: %s", call, what);
        try {
            self(plugin_data)->logger().error(line);
        } catch (...) {
        }
    }
    return on_exception;
}

int get_credentials(void* plugin_data, const char* set, struct pgbv_credentials* out) {
    return guarded(plugin_data, "get_credentials", static_cast<int>(PGBV_ERROR),
                   [&] { return self(plugin_data)->get_credentials(set, out); });
}

void report_drained(void* plugin_data, const char* set, uint64_t generation) {
    guarded(plugin_data, "report_drained", 0, [&] {
        self(plugin_data)->report_drained(set, generation);
        return 0;
    });
}

void report_login_failed(void* plugin_data, const char* set, uint64_t generation,
                         const char* sqlstate) {
    guarded(plugin_data, "report_login_failed", 0, [&] {
        self(plugin_data)->report_login_failed(set, generation, sqlstate);
        return 0;
    });
}

void shutdown(void* plugin_data) {
    // Adopted first, so the plugin is freed (and its secrets wiped) whatever happens.
    std::unique_ptr<Plugin> owned(self(plugin_data));
    guarded(plugin_data, "shutdown", 0, [&] {
        owned->shutdown();
        return 0;
    });
}

void write_error(char* errbuf, size_t errbuf_len, const std::string& message) noexcept {
    if (errbuf == nullptr || errbuf_len == 0) return;
    std::snprintf(errbuf, errbuf_len, "%s", message.c_str());
}

}  // namespace

int pgbv_plugin_init(const struct pgbv_host_api* host, const char* options,
                     struct pgbv_plugin_api* plugin, char* errbuf, size_t errbuf_len) {
    try {
        if (plugin == nullptr) {
            write_error(errbuf, errbuf_len, "PgBouncer passed no plugin API to fill in");
            return PGBV_ERROR;
        }
        std::string error;
        auto created = Plugin::create(host, options == nullptr ? "" : options, &error);
        if (!created) {
            write_error(errbuf, errbuf_len, error);
            return PGBV_ERROR;
        }
        std::memset(plugin, 0, sizeof(*plugin));
        plugin->abi_version = PGBV_ABI_VERSION;
        plugin->struct_size = sizeof(struct pgbv_plugin_api);
        plugin->get_credentials = &get_credentials;
        plugin->report_drained = &report_drained;
        plugin->report_login_failed = &report_login_failed;
        plugin->shutdown = &shutdown;
        plugin->plugin_data = created.release();
        return PGBV_OK;
    } catch (const std::exception& e) {
        write_error(errbuf, errbuf_len, std::string("internal error: ") + e.what());
    } catch (...) {
        write_error(errbuf, errbuf_len, "internal error: unknown exception");
    }
    return PGBV_ERROR;
}
