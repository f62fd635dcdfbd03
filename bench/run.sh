#!/bin/sh
# Usage: bench/run.sh [BUILD_DIR] [pgbench_compare.py options]  (BUILD_DIR defaults to ./build)
# Builds both PgBouncers and the plugin in BUILD_DIR, then runs the comparison (see README.md).
case "${1:-}" in ""|-*) B=build ;; *) B=$1; shift ;; esac; H=$(cd "$(dirname "$0")" && pwd) && \
  { [ -f "$B/CMakeCache.txt" ] || cmake -S "$H/.." -B "$B" >/dev/null; } && \
  cmake --build "$B" --target pgbouncer pgbouncer_upstream pgbv_plugin -j"$(nproc)" && \
  PGBV_BENCH_WRAPPER_COMMAND="$0 $B $*" \
  exec /usr/bin/python3 "$H/pgbench_compare.py" --build-dir "$B" "$@"
