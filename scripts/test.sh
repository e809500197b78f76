#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test tier with ctest:
#   unit (no root), bpf (BPF_PROG_TEST_RUN, root), e2e (network namespaces, root).
# Under CI (CI=true) a privileged test that skips counts as a failure.
# The output ends with ctest's summary line.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

"$root/scripts/setup.sh"
"$root/scripts/build.sh"

if [ "$(id -u)" -ne 0 ]; then
  echo "test: not root; the bpf and e2e tiers will skip (run: sudo ./scripts/test.sh)" >&2
fi

cd "${BUILD_DIR:-$root/build}"
exec ctest --output-on-failure --no-label-summary --timeout 600 "$@"
