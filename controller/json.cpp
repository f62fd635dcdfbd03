// RAII ownership of jansson values and typed field access.

#include "controller/json.hpp"

#include <cstdlib>
#include <cstring>

namespace pgbv::ctl::json {

Ptr parse(std::string_view text, std::string* error) {
    json_error_t err;
    // JSON_REJECT_DUPLICATES: a body that says two things about one field is not Vault.
    json_t* root = json_loadb(text.data(), text.size(), JSON_REJECT_DUPLICATES, &err);
    if (root == nullptr && error != nullptr) {
        *error = "invalid JSON at line " + std::to_string(err.line) + ", column " +
                 std::to_string(err.column);
    }
    return Ptr(root);
}

std::string dump(const json_t* value) {
    char* text = json_dumps(value, JSON_COMPACT);
    if (text == nullptr) return {};
    std::string out(text);
    std::free(text);  // NOLINT(cppcoreguidelines-no-malloc): json_dumps allocates
    return out;
}

Secret dump_secret(const json_t* value) {
    char* text = json_dumps(value, JSON_COMPACT);
    if (text == nullptr) return Secret();
    Secret out(text);
    secure_wipe(text, std::strlen(text));
    std::free(text);  // NOLINT(cppcoreguidelines-no-malloc): json_dumps allocates
    return out;
}

json_t* object(const json_t* obj, const char* key) {
    json_t* v = json_is_object(obj) ? json_object_get(obj, key) : nullptr;
    return json_is_object(v) ? v : nullptr;
}

json_t* array(const json_t* obj, const char* key) {
    json_t* v = json_is_object(obj) ? json_object_get(obj, key) : nullptr;
    return json_is_array(v) ? v : nullptr;
}

std::optional<std::string_view> string(const json_t* obj, const char* key) {
    json_t* v = json_is_object(obj) ? json_object_get(obj, key) : nullptr;
    if (!json_is_string(v)) return std::nullopt;
    return std::string_view(json_string_value(v), json_string_length(v));
}

std::optional<std::int64_t> integer(const json_t* obj, const char* key) {
    json_t* v = json_is_object(obj) ? json_object_get(obj, key) : nullptr;
    if (!json_is_integer(v)) return std::nullopt;
    return static_cast<std::int64_t>(json_integer_value(v));
}

std::optional<bool> boolean(const json_t* obj, const char* key) {
    json_t* v = json_is_object(obj) ? json_object_get(obj, key) : nullptr;
    if (!json_is_boolean(v)) return std::nullopt;
    return json_is_true(v);
}

bool is_null(const json_t* obj, const char* key) {
    json_t* v = json_is_object(obj) ? json_object_get(obj, key) : nullptr;
    return json_is_null(v);
}

}  // namespace pgbv::ctl::json
