// Where the controller's Vault identity comes from.

#include "controller/auth_source.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace pgbv::ctl {
namespace {

constexpr std::size_t kMaxSecretFile = std::size_t{64} * 1024;

}  // namespace

AuthSource::AuthSource(const VaultSettings& settings, Secret env_token)
    : method_(settings.auth_method),
      token_file_(settings.token_from_env ? std::string() : settings.token_file),
      env_token_(settings.token_from_env ? std::move(env_token) : Secret()),
      role_id_file_(settings.role_id_file),
      secret_id_file_(settings.secret_id_file),
      approle_mount_(settings.approle_mount) {}

std::string AuthSource::token_origin() const {
    return token_file_.empty() ? std::string("VAULT_TOKEN") : "token_file " + token_file_;
}

bool AuthSource::read_token(Secret* token, std::string* error) const {
    if (token_file_.empty()) {
        if (env_token_.empty()) {
            *error = "VAULT_TOKEN is empty";
            return false;
        }
        *token = env_token_.clone();
        return true;
    }
    return read_secret_file(token_file_, token, error);
}

bool AuthSource::read_approle(Secret* role_id, Secret* secret_id, std::string* error) const {
    return read_secret_file(role_id_file_, role_id, error) &&
           read_secret_file(secret_id_file_, secret_id, error);
}

Secret AuthSource::take_env_token() {
    char* value = std::getenv("VAULT_TOKEN");
    if (value == nullptr) return Secret();
    Secret token(value);
    secure_wipe(value, std::strlen(value));
    ::unsetenv("VAULT_TOKEN");
    return token;
}

bool AuthSource::read_secret_file(const std::string& path, Secret* out, std::string* error) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *error = "cannot read " + path + ": " + std::strerror(errno);
        return false;
    }
    auto buf = std::make_unique<char[]>(kMaxSecretFile + 1);
    std::size_t size = 0;
    bool failed = false;
    int saved_errno = 0;
    while (size <= kMaxSecretFile) {
        const ssize_t n = ::read(fd, buf.get() + size, kMaxSecretFile + 1 - size);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            failed = true;
            saved_errno = errno;
            break;
        }
        if (n == 0) break;
        size += static_cast<std::size_t>(n);
    }
    ::close(fd);
    bool ok = false;
    if (failed) {
        *error = "cannot read " + path + ": " + std::strerror(saved_errno);
    } else if (size > kMaxSecretFile) {
        *error = path + " is larger than 64 KiB; it should hold one token or ID";
    } else {
        std::size_t end = size;
        while (end > 0 && std::strchr(" \t\r\n", buf[end - 1]) != nullptr)
            --end;
        std::size_t begin = 0;
        while (begin < end && std::strchr(" \t\r\n", buf[begin]) != nullptr)
            ++begin;
        if (begin == end) {
            *error = path + " is empty";
        } else {
            out->assign(std::string_view(buf.get() + begin, end - begin));
            ok = true;
        }
    }
    secure_wipe(buf.get(), kMaxSecretFile + 1);
    return ok;
}

}  // namespace pgbv::ctl
