// Where a credential set's secrets come from: dynamic role, static role, KV version 2.

#include "controller/secret_source.hpp"

namespace pgbv::ctl {
namespace {

using Fetched = SecretSource::Fetched;

class DynamicRole final : public SecretSource {
public:
    explicit DynamicRole(const SetSettings& s)
        : SecretSource(SecretKind::kDynamic, s.mount + "/creds/" + s.role),
          mount_(s.mount),
          role_(s.role) {}

    VaultClient::Pending fetch(VaultClient& vault, const Secret& token, Done done) const override {
        return vault.read_credentials(token, mount_, role_,
                                      [done = std::move(done)](Result<DbCredentials> r) {
                                          if (!r.ok()) return done(r.error());
                                          DbCredentials& c = r.value();
                                          Fetched f;
                                          f.username = std::move(c.username);
                                          f.password = std::move(c.password);
                                          f.lease_id = std::move(c.lease_id);
                                          f.renewable = c.renewable;
                                          f.ttl = c.ttl;
                                          done(std::move(f));
                                      });
    }

private:
    std::string mount_, role_;
};

class StaticRole final : public SecretSource {
public:
    explicit StaticRole(const SetSettings& s)
        : SecretSource(SecretKind::kStatic, s.mount + "/static-creds/" + s.role),
          mount_(s.mount),
          role_(s.role) {}

    VaultClient::Pending fetch(VaultClient& vault, const Secret& token, Done done) const override {
        return vault.read_static_credentials(token, mount_, role_,
                                             [done = std::move(done)](Result<StaticCredentials> r) {
                                                 if (!r.ok()) return done(r.error());
                                                 StaticCredentials& c = r.value();
                                                 Fetched f;
                                                 f.username = std::move(c.username);
                                                 f.password = std::move(c.password);
                                                 f.ttl = c.ttl;
                                                 f.last_rotation = std::move(c.last_vault_rotation);
                                                 done(std::move(f));
                                             });
    }

private:
    std::string mount_, role_;
};

class KvSecret final : public SecretSource {
public:
    explicit KvSecret(const SetSettings& s)
        : SecretSource(SecretKind::kKv, s.mount + "/data/" + s.path),
          mount_(s.mount),
          path_in_mount_(s.path),
          username_field_(s.username_field),
          password_field_(s.password_field) {}

    VaultClient::Pending fetch(VaultClient& vault, const Secret& token, Done done) const override {
        return vault.read_kv(token, mount_, path_in_mount_, username_field_, password_field_,
                             [done = std::move(done)](Result<KvCredentials> r) {
                                 if (!r.ok()) return done(r.error());
                                 KvCredentials& c = r.value();
                                 Fetched f;
                                 f.username = std::move(c.username);
                                 f.password = std::move(c.password);
                                 f.version = c.version;
                                 done(std::move(f));
                             });
    }

private:
    std::string mount_, path_in_mount_, username_field_, password_field_;
};

}  // namespace

std::unique_ptr<SecretSource> make_secret_source(const SetSettings& settings) {
    switch (settings.kind) {
        case SecretKind::kStatic:
            return std::make_unique<StaticRole>(settings);
        case SecretKind::kKv:
            return std::make_unique<KvSecret>(settings);
        case SecretKind::kDynamic:
            break;
    }
    return std::make_unique<DynamicRole>(settings);
}

}  // namespace pgbv::ctl
