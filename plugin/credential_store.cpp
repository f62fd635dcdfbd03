// The plugin's credential sets: current credentials with plugin-local generations.
#include "plugin/credential_store.hpp"

#include <utility>

namespace pgbv::plugin {

CredentialStore::Applied CredentialStore::apply(wire::Credentials&& c, std::int64_t now_us) {
    auto it = sets_.find(c.set);
    if (it == sets_.end()) {
        Set fresh;
        fresh.current.generation = 1;
        fresh.current.controller_generation = c.generation;
        fresh.current.username = std::move(c.username);
        fresh.current.password = std::move(c.password);
        fresh.current.expires_at = c.expires_at;
        fresh.current.received_at_us = now_us;
        sets_.emplace(std::move(c.set), std::move(fresh));
        return Applied::kNewGeneration;
    }

    CurrentCredentials& cur = it->second.current;
    // The same generation must always mean the same user and password, and anything else
    // must not look like a change (it would recycle every server connection).
    if (cur.username == c.username && cur.password == c.password) {
        cur.controller_generation = c.generation;
        cur.expires_at = c.expires_at;
        c.password.clear();
        return Applied::kUnchanged;
    }

    auto& history = it->second.history;
    history[cur.generation] = OldGeneration{cur.controller_generation, std::move(cur.username)};
    while (history.size() > max_history_)
        history.erase(history.begin());

    cur.generation += 1;
    cur.controller_generation = c.generation;
    cur.username = std::move(c.username);
    cur.password = std::move(c.password);  // wipes the old password
    cur.expires_at = c.expires_at;
    cur.received_at_us = now_us;
    return Applied::kNewGeneration;
}

const CurrentCredentials* CredentialStore::find(std::string_view set) const {
    auto it = sets_.find(set);
    return it == sets_.end() ? nullptr : &it->second.current;
}

std::optional<Origin> CredentialStore::origin(std::string_view set,
                                              std::uint64_t generation) const {
    auto it = sets_.find(set);
    if (it == sets_.end()) return std::nullopt;
    const Set& s = it->second;
    if (s.current.generation == generation) {
        return Origin{s.current.controller_generation, s.current.username, true};
    }
    auto old = s.history.find(generation);
    if (old == s.history.end()) return std::nullopt;
    return Origin{old->second.controller_generation, old->second.username, false};
}

void CredentialStore::forget(std::string_view set, std::uint64_t generation) {
    auto it = sets_.find(set);
    if (it != sets_.end()) it->second.history.erase(generation);
}

}  // namespace pgbv::plugin
