/*
 * The C ABI between a patched PgBouncer (the host) and a credential plugin.
 *
 * A credential plugin is a shared object that hands PgBouncer the user name and
 * password it uses towards PostgreSQL for every database configured with
 * `credential=<set>`.  The host and the plugin talk only through the two
 * structs of function pointers below; the PgBouncer binary exports no symbols.
 *
 * Life cycle, as the host drives it:
 *
 *   1. dlopen(credential_plugin), before PgBouncer daemonises.
 *   2. dlsym(PGBV_ABI_VERSION_SYMBOL): a `const uint32_t` that must equal the
 *      host's PGBV_ABI_VERSION, or PgBouncer refuses to start and prints both.
 *   3. dlsym(PGBV_PLUGIN_INIT_SYMBOL) and call it once the event loop exists
 *      (after daemonising).  The plugin fills in `struct pgbv_plugin_api`.
 *   4. From then on the host calls get_credentials() for every new server
 *      connection, report_drained() and report_login_failed() as things happen,
 *      and shutdown() once when PgBouncer exits.
 *
 * Threading: everything happens on PgBouncer's single event-loop thread.  No
 * function on either side may block; the plugin does its I/O through events
 * it registers on the host's event_base.
 *
 * Re-entrancy: the plugin calls host->credentials_changed() from its own event
 * callbacks.  Inside that call the host calls back into get_credentials() and
 * may call report_drained(); the plugin must allow this.  The plugin must not
 * call credentials_changed() from inside any pgbv_plugin_api function.
 *
 * Errors: no function on either side may let a C++ exception or a longjmp
 * cross this boundary.
 *
 * Secrets: the password is copied into host-owned memory by get_credentials();
 * the host wipes it when the credentials are released.  Neither side logs it.
 */
#ifndef PGBV_PLUGIN_ABI_H
#define PGBV_PLUGIN_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on every incompatible change of the structs or their semantics. */
#define PGBV_ABI_VERSION 1u

/* Exported by the plugin: `const uint32_t pgbv_abi_version = PGBV_ABI_VERSION;` */
#define PGBV_ABI_VERSION_SYMBOL "pgbv_abi_version"

/* Exported by the plugin: a function of type pgbv_plugin_init_fn. */
#define PGBV_PLUGIN_INIT_SYMBOL "pgbv_plugin_init"

/* Buffer sizes, NUL included.  They match PgBouncer's MAX_USERNAME/MAX_PASSWORD. */
#define PGBV_MAX_SET_NAME 64
#define PGBV_MAX_USERNAME 128
#define PGBV_MAX_PASSWORD 2048

/* Log levels for pgbv_host_api.log. */
enum pgbv_log_level {
	PGBV_LOG_ERROR = 1,
	PGBV_LOG_WARNING = 2,
	PGBV_LOG_INFO = 3,
	PGBV_LOG_DEBUG = 4
};

/* Return codes of pgbv_plugin_api.get_credentials and pgbv_plugin_init_fn. */
enum pgbv_status {
	PGBV_OK = 0,
	PGBV_NOT_FOUND = 1,	/* the set has no credentials (yet) */
	PGBV_ERROR = 2		/* anything else; see the function's contract */
};

struct event_base;

/* One generation of a credential set, as copied out to the host. */
struct pgbv_credentials {
	/*
	 * Greater than zero, strictly increasing per set over the life of the
	 * plugin: a new user or password always comes with a new generation, and
	 * the same generation always means the same user and password.
	 */
	uint64_t generation;
	/* When the plugin received this generation, microseconds since the epoch. */
	int64_t received_at_us;
	/* When the credentials stop working, seconds since the epoch; 0 if unknown. */
	int64_t expires_at;
	/* NUL-terminated login user name. */
	char username[PGBV_MAX_USERNAME];
	/* NUL-terminated password, plain text. */
	char password[PGBV_MAX_PASSWORD];
};

/* What the host offers the plugin.  Valid from init until shutdown returns. */
struct pgbv_host_api {
	uint32_t abi_version;	/* PGBV_ABI_VERSION of the host */
	uint32_t struct_size;	/* sizeof(struct pgbv_host_api) of the host */
	void *host_data;	/* opaque, passed back in every call below */

	/* PgBouncer's libevent base; register every event of the plugin here. */
	struct event_base *event_base;

	/*
	 * Write one line to PgBouncer's log.  `message` has no trailing newline
	 * and must never contain a secret.  Never fails.
	 */
	void (*log)(void *host_data, int level, const char *message);

	/*
	 * Tell the host that the set's current generation changed (new
	 * credentials arrived).  The host reads the new generation through
	 * get_credentials() before it returns, closes idle servers of older
	 * generations and marks busy ones to close when released.  Calling it
	 * for an unknown set or with no change is harmless.
	 */
	void (*credentials_changed)(void *host_data, const char *set);
};

/* What the plugin offers the host.  Filled in by pgbv_plugin_init_fn. */
struct pgbv_plugin_api {
	uint32_t abi_version;	/* PGBV_ABI_VERSION of the plugin */
	uint32_t struct_size;	/* sizeof(struct pgbv_plugin_api) of the plugin */
	void *plugin_data;	/* opaque, passed back in every call below */

	/*
	 * Copy the set's current credentials into *out.  An in-memory lookup
	 * that never blocks and never performs I/O.
	 *
	 * Returns PGBV_OK with *out filled, PGBV_NOT_FOUND when the plugin has
	 * no credentials for the set (out->username and out->password are then
	 * empty strings), or PGBV_ERROR on a bad argument.
	 */
	int (*get_credentials)(void *plugin_data, const char *set,
			       struct pgbv_credentials *out);

	/*
	 * The last server connection that used `generation` of `set` has
	 * closed, and the generation is no longer current: its credentials can
	 * be revoked.  Called at most once per (set, generation).
	 */
	void (*report_drained)(void *plugin_data, const char *set, uint64_t generation);

	/*
	 * A server login with `generation` of `set` was refused by PostgreSQL
	 * with `sqlstate` (five characters, class 28: "28P01" invalid_password
	 * or "28000" invalid_authorization_specification, e.g. a dropped role).
	 */
	void (*report_login_failed)(void *plugin_data, const char *set,
				    uint64_t generation, const char *sqlstate);

	/*
	 * PgBouncer is exiting: release every resource and wipe every secret.
	 * No other function is called afterwards.
	 */
	void (*shutdown)(void *plugin_data);
};

/*
 * The plugin's entry point.  `options` is credential_plugin_options from
 * pgbouncer.ini (never NULL, possibly empty).  On success fill *plugin and
 * return PGBV_OK.  On failure write a one-line reason (no secret) into
 * errbuf, NUL-terminated and truncated to errbuf_len, and return PGBV_ERROR;
 * PgBouncer then refuses to start and prints it.
 */
typedef int (*pgbv_plugin_init_fn)(const struct pgbv_host_api *host,
				   const char *options,
				   struct pgbv_plugin_api *plugin,
				   char *errbuf, size_t errbuf_len);

#ifdef __cplusplus
}
#endif

#endif /* PGBV_PLUGIN_ABI_H */
