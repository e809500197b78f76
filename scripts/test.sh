#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test tier with ctest:
#   unit (no root), bpf (BPF_PROG_TEST_RUN, root), e2e (network namespaces, root),
#   fuzz (libFuzzer over the configuration compiler, TCPSHIFT_FUZZ_SECONDS each, default 30).
# Under CI (CI=true) a privileged test that skips counts as a failure.
# The output ends with ctest's summary line.
#
#   sudo ./scripts/test.sh [--vm] [CTEST ARGS...]
# --vm also runs the bpf and e2e tiers in a qemu guest on Debian 12's 6.1 kernel
# (tests/vm/run.sh), before the release tier.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

vm=0
if [ "${1:-}" = --vm ]; then
  vm=1
  shift
fi

# --bench: e2e.bench.LeavesNothingRunning runs bench/run.sh against HAProxy and iperf3.
"$root/scripts/setup.sh" --bench

# The same tests under AddressSanitizer and UndefinedBehaviorSanitizer first (skip with
# TCPSHIFT_NO_SANITIZE=1), then the release build, whose ctest summary closes the output.
if [ "${TCPSHIFT_NO_SANITIZE:-0}" != 1 ]; then
  echo "== sanitizer build (ASan + UBSan)"
  BUILD_DIR="$root/build-sanitize" "$root/scripts/build.sh" -DTCPSHIFT_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
  (cd "$root/build-sanitize" &&
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      ctest --output-on-failure --no-label-summary --timeout 600 "$@")
fi

# libFuzzer targets for the parsers and the compiler, each run for a bounded time (skip with
# TCPSHIFT_NO_FUZZ=1). A crash leaves its input in build-fuzz/fuzz-artifacts/.
if [ "${TCPSHIFT_NO_FUZZ:-0}" != 1 ]; then
  echo "== fuzz build (clang 16, libFuzzer + ASan + UBSan)"
  CC=clang-16 CXX=clang++-16 BUILD_DIR="$root/build-fuzz" "$root/scripts/build.sh" -DTCPSHIFT_FUZZ=ON \
    -DTCPSHIFT_WERROR=OFF -DTCPSHIFT_FUZZ_SECONDS="${TCPSHIFT_FUZZ_SECONDS:-30}"
  (cd "$root/build-fuzz" &&
    ASAN_SYMBOLIZER_PATH=/usr/bin/llvm-symbolizer-16 ctest --output-on-failure --no-label-summary --timeout 600)
fi

echo "== release build"
"$root/scripts/build.sh"

if [ "$vm" = 1 ]; then
  echo "== VM tier: bpf and e2e on Debian 12's Linux 6.1"
  "$root/tests/vm/run.sh" --kernel deb:6.1
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "test: not root; the bpf and e2e tiers will skip (run: sudo ./scripts/test.sh)" >&2
fi

cd "$root/build"
exec ctest --output-on-failure --no-label-summary --timeout 600 "$@"
