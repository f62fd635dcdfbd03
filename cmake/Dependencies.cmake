# Finds every library through pkg-config; a missing one names the Debian package.
find_package(PkgConfig)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: install the Debian package 'pkg-config' "
                      "(or run scripts/install-deps.sh)")
endif()

# pgbv_require(<prefix> <pkg-config module> <Debian package>)
function(pgbv_require prefix module debian_package)
  pkg_check_modules(${prefix} QUIET IMPORTED_TARGET GLOBAL ${module})
  if(NOT ${prefix}_FOUND)
    message(FATAL_ERROR "pkg-config module '${module}' not found: install the Debian package "
                        "'${debian_package}' (or run scripts/install-deps.sh)")
  endif()
endfunction()

pgbv_require(LIBEVENT libevent libevent-dev)
pgbv_require(JANSSON jansson libjansson-dev)
pgbv_require(LIBCURL libcurl libcurl4-openssl-dev)
pgbv_require(OPENSSL openssl libssl-dev)
pgbv_require(GTEST gtest libgtest-dev)
pgbv_require(GTEST_MAIN gtest_main libgtest-dev)
pgbv_require(GMOCK gmock libgmock-dev)
pgbv_require(LIBPQ libpq libpq-dev)
