#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test tier with ctest:
#   unit (no root), bpf (BPF_PROG_TEST_RUN, root), e2e (network namespaces, root).
# Under CI (CI=true) a privileged test that skips counts as a failure.
# The output ends with ctest's summary line.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

"$root/scripts/setup.sh"

# The same tests under AddressSanitizer and UndefinedBehaviorSanitizer first (skip with
# TCPSHIFT_NO_SANITIZE=1), then the release build, whose ctest summary closes the output.
if [ "${TCPSHIFT_NO_SANITIZE:-0}" != 1 ]; then
  echo "== sanitizer build (ASan + UBSan)"
  BUILD_DIR="$root/build-sanitize" "$root/scripts/build.sh" -DTCPSHIFT_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
  (cd "$root/build-sanitize" &&
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      ctest --output-on-failure --no-label-summary --timeout 600 "$@")
fi

echo "== release build"
"$root/scripts/build.sh"

if [ "$(id -u)" -ne 0 ]; then
  echo "test: not root; the bpf and e2e tiers will skip (run: sudo ./scripts/test.sh)" >&2
fi

cd "$root/build"
exec ctest --output-on-failure --no-label-summary --timeout 600 "$@"
