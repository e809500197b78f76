# Sourced by the shell tests that need root (network namespaces, BPF): without it, a test
# skips (ctest's SKIP_RETURN_CODE 77), except under CI, where every privileged test must run.
if [ "$(id -u)" -ne 0 ]; then
  if [ "${CI:-}" = true ]; then
    echo "FAIL: needs root (network namespaces, BPF), and CI runs as root" >&2
    exit 1
  fi
  echo "skipped: needs root"
  exit 77
fi
