/* A credential plugin built for another ABI version, for the refusal test of the e2e suite. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <pgbv/plugin_abi.h>

/* Not PGBV_ABI_VERSION: PgBouncer must refuse to start and print both numbers. */
const uint32_t pgbv_abi_version = 999;

/*
 * Present so that the host's refusal is due to the version alone.  It must never be called;
 * if a host does, its start-up error shows this text and the test catches it.
 */
int pgbv_plugin_init(const struct pgbv_host_api *host, const char *options,
		     struct pgbv_plugin_api *plugin, char *errbuf, size_t errbuf_len)
{
	(void)host;
	(void)options;
	(void)plugin;
	snprintf(errbuf, errbuf_len, "bad-ABI test plugin: init called despite ABI 999");
	return PGBV_ERROR;
}
