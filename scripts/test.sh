#!/bin/sh
# Installs what is needed, builds everything and runs every test (run as root).
set -eu
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
BUILD_DIR=${PGBV_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$BUILD_DIR" -j"$(nproc)"
cd "$BUILD_DIR"
ctest --output-on-failure --timeout 900 "$@"
