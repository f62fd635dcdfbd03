# Builds PgBouncer 1.24.1 from Debian's source package: patched, and plain for comparison.
set(PGBV_DOWNLOAD_DIR "$ENV{HOME}/.cache/pgbouncer-vault/downloads"
    CACHE PATH "Where the Debian source package of PgBouncer is kept between builds")

file(GLOB PGBV_PGBOUNCER_PATCHES CONFIGURE_DEPENDS
     ${PROJECT_SOURCE_DIR}/patches/pgbouncer-1.24.1/*.patch)
list(SORT PGBV_PGBOUNCER_PATCHES)

string(REPLACE ";" " " _pgbv_san "${PGBV_SANITIZER_FLAGS}")
set(_pgbv_pgb_cflags "-g -O2 ${_pgbv_san}")
set(_pgbv_pgb_ldflags "")
if(PGBV_SANITIZE)
  set(_pgbv_pgb_ldflags "-fsanitize=address,undefined")
endif()

set(_pgbv_pgb_script ${PROJECT_SOURCE_DIR}/cmake/build-pgbouncer.sh)

# The patched PgBouncer that loads the credential plugin.
set(PGBV_PGBOUNCER_DIR ${CMAKE_BINARY_DIR}/pgbouncer/patched)
set(PGBV_PGBOUNCER_BIN ${PGBV_PGBOUNCER_DIR}/pgbouncer)
add_custom_command(
  OUTPUT ${PGBV_PGBOUNCER_BIN}
  COMMAND ${_pgbv_pgb_script} --download-dir ${PGBV_DOWNLOAD_DIR}
          --build-dir ${PGBV_PGBOUNCER_DIR}
          --patches ${PROJECT_SOURCE_DIR}/patches/pgbouncer-1.24.1
          --include ${PROJECT_SOURCE_DIR}/include
          --cflags ${_pgbv_pgb_cflags} --ldflags "${_pgbv_pgb_ldflags}"
  DEPENDS ${_pgbv_pgb_script} ${PGBV_PGBOUNCER_PATCHES}
          ${PROJECT_SOURCE_DIR}/include/pgbv/plugin_abi.h
  COMMENT "Building patched PgBouncer 1.24.1"
  VERBATIM USES_TERMINAL)
add_custom_target(pgbouncer ALL DEPENDS ${PGBV_PGBOUNCER_BIN})

# Upstream 1.24.1 with Debian's security fixes only: the baseline for benchmarks
# and for PgBouncer's own test suite.
set(PGBV_PGBOUNCER_UPSTREAM_DIR ${CMAKE_BINARY_DIR}/pgbouncer/upstream)
set(PGBV_PGBOUNCER_UPSTREAM_BIN ${PGBV_PGBOUNCER_UPSTREAM_DIR}/pgbouncer)
add_custom_command(
  OUTPUT ${PGBV_PGBOUNCER_UPSTREAM_BIN}
  COMMAND ${_pgbv_pgb_script} --download-dir ${PGBV_DOWNLOAD_DIR}
          --build-dir ${PGBV_PGBOUNCER_UPSTREAM_DIR}
          --cflags ${_pgbv_pgb_cflags} --ldflags "${_pgbv_pgb_ldflags}"
  DEPENDS ${_pgbv_pgb_script}
  COMMENT "Building upstream PgBouncer 1.24.1 (Debian security fixes only)"
  VERBATIM USES_TERMINAL)
add_custom_target(pgbouncer_upstream DEPENDS ${PGBV_PGBOUNCER_UPSTREAM_BIN})
