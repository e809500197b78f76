#!/usr/bin/env bash
# bench/run.sh stops every process it starts: after a whole (short) run, and after a run
# interrupted in the middle, no echo server, iperf3, HAProxy or load generator of the bench is
# left, and neither is its network namespace. The run must also have measured every
# configuration, so a bench that exits early cannot pass.
#
#   tests/bench/leaves_nothing_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)

. "$root/tests/support/needs_root.sh"

work=$(mktemp -d /tmp/tcpshift-bench-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
daemons='tcpshift-echo|tcpshift-loadgen|iperf3|haproxy'
# What runs already (another test's, the user's) is not the bench's.
running() { pgrep -d ' ' -f "(^|/)($daemons)( |$)" 2>/dev/null || true; }
before=" $(running) "

# Whatever of the bench remains: new daemons, and its namespaces.
leftovers() {
  local p
  for p in $(running); do
    case "$before" in *" $p "*) continue ;; esac
    echo "process $p: $(tr '\0' ' ' </proc/"$p"/cmdline 2>/dev/null)"
  done
  ip netns list | awk '$1 ~ /^tsbench-/ {print "network namespace " $1}'
}
check_clean() {  # WHAT
  local left=""
  for _ in $(seq 30); do  # processes killed by the bench's cleanup may take a moment to go
    left=$(leftovers)
    [ -z "$left" ] && return 0
    sleep 0.1
  done
  echo "FAIL: after $1, the bench left:" >&2
  echo "$left" >&2
  exit 1
}

# A whole run: every configuration measured, with connections that got their replies.
BUILD_DIR="$build" timeout 300 "$root/bench/run.sh" --quick --rounds 1 --seconds 0.3 --no-scale --no-readme \
  --no-build --out "$work/whole" >"$work/whole.log" 2>&1 || {
  echo "FAIL: bench/run.sh failed:" >&2
  tail -n 20 "$work/whole.log" >&2
  exit 1
}
configs=$(jq -r 'select(.cps > 0 and .crr_failed == 0) | .config' "$work/whole/latest.jsonl" | sort | tr '\n' ' ')
if [ "$configs" != "attached bare haproxy nftables tcpshift unrelated " ]; then
  echo "FAIL: expected every configuration measured without failures, got: $configs" >&2
  cat "$work/whole/latest.jsonl" >&2
  exit 1
fi
check_clean "a whole run"
echo "a whole run: measured $configs; nothing left"

# An interrupted run: SIGTERM once the first configuration is measured, while the others run.
BUILD_DIR="$build" "$root/bench/run.sh" --quick --rounds 3 --seconds 1 --no-scale --no-readme --no-build \
  --out "$work/cut" >"$work/cut.log" 2>&1 &
bench_pid=$!
for _ in $(seq 600); do  # up to 60 s
  [ -s "$work/cut/latest.jsonl" ] && break
  kill -0 "$bench_pid" 2>/dev/null || break
  sleep 0.1
done
if [ ! -s "$work/cut/latest.jsonl" ]; then
  echo "FAIL: the bench measured nothing within 60 s:" >&2
  tail -n 20 "$work/cut.log" >&2
  exit 1
fi
kill -TERM "$bench_pid"
for _ in $(seq 300); do kill -0 "$bench_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$bench_pid" 2>/dev/null; then
  echo "FAIL: the bench still runs 30 s after SIGTERM" >&2
  kill -9 "$bench_pid"
  exit 1
fi
check_clean "a run stopped by SIGTERM"
echo "a run stopped by SIGTERM after $(wc -l <"$work/cut/latest.jsonl") sample(s): nothing left"
