// RAII ownership of jansson values and typed, never-crashing field access.
//
// Vault's answers are untrusted input: every accessor checks the type and returns
// nullopt instead of asserting.  Parse errors never quote the input (a truncated body
// may hold half a password), only where it broke.

#ifndef PGBV_CONTROLLER_JSON_HPP
#define PGBV_CONTROLLER_JSON_HPP

#include <jansson.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "pgbv/secret.hpp"

namespace pgbv::ctl::json {

struct Decref {
    void operator()(json_t* j) const noexcept { json_decref(j); }
};
// Owns one reference.
using Ptr = std::unique_ptr<json_t, Decref>;

// Takes ownership of a new reference (e.g. from json_object()).
inline Ptr own(json_t* j) {
    return Ptr(j);
}

// Parses `text`.  On failure returns null and sets `error` to where it broke, e.g.
// "invalid JSON at line 1, column 17" (never the text itself).
Ptr parse(std::string_view text, std::string* error);

// Serialises compactly (one line).  Returns an empty string only if out of memory.
std::string dump(const json_t* value);

// The same for a value that holds a secret (a request body with a JWT, a secret ID or a
// password): jansson's own buffer is wiped before it is freed.  Empty if out of memory.
Secret dump_secret(const json_t* value);

// Field access; each returns nullopt when `obj` is not an object, the key is missing, or
// the value has another type.  Borrowed pointers live as long as `obj`.
json_t* object(const json_t* obj, const char* key);  // nullptr unless an object
json_t* array(const json_t* obj, const char* key);   // nullptr unless an array
std::optional<std::string_view> string(const json_t* obj, const char* key);
std::optional<std::int64_t> integer(const json_t* obj, const char* key);  // integers only
std::optional<bool> boolean(const json_t* obj, const char* key);

// True if the key is present with the value null (Vault's "nothing here").
bool is_null(const json_t* obj, const char* key);

}  // namespace pgbv::ctl::json

#endif  // PGBV_CONTROLLER_JSON_HPP
