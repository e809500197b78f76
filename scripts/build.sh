#!/usr/bin/env bash
# Configures and builds tcpshift into ./build (or $BUILD_DIR). Extra arguments go to cmake.
# BUILD_TARGETS="tcpshift tcpshift-echo" builds only those targets (and what they need).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTCPSHIFT_WERROR=ON "$@" >/dev/null
targets=()
for t in ${BUILD_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build" -j "$(nproc)" "${targets[@]}"
