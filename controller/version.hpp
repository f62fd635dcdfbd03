// The controller's name and version, as sent in HELLO and shown by pgbvctl.

#ifndef PGBV_CONTROLLER_VERSION_HPP
#define PGBV_CONTROLLER_VERSION_HPP

namespace pgbv::ctl {

inline constexpr char kVersion[] = "0.1.0";
inline constexpr char kSoftware[] = "pgbv-controller 0.1.0";

}  // namespace pgbv::ctl

#endif  // PGBV_CONTROLLER_VERSION_HPP
