// Makes the C libraries the controller uses wipe the memory they free.
//
// Vault's answers (tokens, database passwords) pass through libcurl's buffers, jansson's
// strings, libevent's output buffers and OpenSSL's TLS records.  None of them wipes what
// it frees, so the controller installs allocation functions that overwrite every block
// before freeing it (its size comes from malloc_usable_size) and never let realloc leave
// an unwiped copy behind.  The cost is negligible at the controller's request rate.

#ifndef PGBV_CONTROLLER_WIPING_MEMORY_HPP
#define PGBV_CONTROLLER_WIPING_MEMORY_HPP

#include <cstddef>
#include <string>

namespace pgbv::ctl {

// Installs the wiping functions into jansson, libevent, libcurl and OpenSSL, and runs
// curl_global_init.  Call once, first thing in main(), before any of those libraries
// allocates.  Returns false and sets `error` if a library refused (it had allocated
// already).
bool install_wiping_allocators(std::string* error);

// Initialises libcurl without wiping allocators (tests that do not need them).
bool init_curl_plain(std::string* error);

void* wiping_realloc(void* p, std::size_t n);
void wiping_free(void* p);

}  // namespace pgbv::ctl

#endif  // PGBV_CONTROLLER_WIPING_MEMORY_HPP
