// Allocation functions that wipe freed memory, installed into the C libraries.

#include "controller/wiping_memory.hpp"

// This file *is* the allocator the C libraries call: malloc and free are its job.
// NOLINTBEGIN(cppcoreguidelines-no-malloc)

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <string.h>

#include <cstdlib>
#include <cstring>

namespace pgbv::ctl {

void wiping_free(void* p) {
    if (p == nullptr) return;
    explicit_bzero(p, malloc_usable_size(p));
    std::free(p);
}

// Never grows in place through realloc(): a moved block would be freed unwiped.
void* wiping_realloc(void* p, std::size_t n) {
    if (p == nullptr) return std::malloc(n);
    if (n == 0) {
        wiping_free(p);
        return nullptr;
    }
    const std::size_t old = malloc_usable_size(p);
    if (n <= old) return p;
    void* fresh = std::malloc(n);
    if (fresh == nullptr) return nullptr;
    std::memcpy(fresh, p, old);
    wiping_free(p);
    return fresh;
}

namespace {

char* wiping_strdup(const char* s) {
    const std::size_t n = std::strlen(s) + 1;
    auto* copy = static_cast<char*>(std::malloc(n));
    if (copy != nullptr) std::memcpy(copy, s, n);
    return copy;
}

void* ossl_malloc(std::size_t n, const char*, int) {
    return std::malloc(n);
}
void* ossl_realloc(void* p, std::size_t n, const char*, int) {
    return wiping_realloc(p, n);
}
void ossl_free(void* p, const char*, int) {
    wiping_free(p);
}

}  // namespace

bool install_wiping_allocators(std::string* error) {
    if (CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free) != 1) {
        *error = "OpenSSL allocated memory before the controller could install its "
                 "wiping allocator";
        return false;
    }
    json_set_alloc_funcs(std::malloc, wiping_free);
    event_set_mem_functions(std::malloc, wiping_realloc, wiping_free);
    const CURLcode rc = curl_global_init_mem(CURL_GLOBAL_DEFAULT, std::malloc, wiping_free,
                                             wiping_realloc, wiping_strdup, std::calloc);
    if (rc != CURLE_OK) {
        *error = std::string("libcurl initialisation failed: ") + curl_easy_strerror(rc);
        return false;
    }
    return true;
}

bool init_curl_plain(std::string* error) {
    const CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
        *error = std::string("libcurl initialisation failed: ") + curl_easy_strerror(rc);
        return false;
    }
    return true;
}

}  // namespace pgbv::ctl
// NOLINTEND(cppcoreguidelines-no-malloc)
