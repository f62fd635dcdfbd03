#!/bin/sh
# Installs what is needed, builds, and runs the demo of the whole chain (run as root).
set -eu
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
BUILD_DIR=${PGBV_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target pgbouncer pgbv_plugin pgbv-controller pgbvctl
exec /usr/bin/python3 scripts/demo.py --build-dir "$BUILD_DIR" "$@"
