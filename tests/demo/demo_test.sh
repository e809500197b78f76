#!/usr/bin/env bash
# scripts/demo.sh, as the README's first command: it builds what it runs (in its own build
# directory), and its three tallies follow the weights (50/50, then 20/80 for IPv4 and IPv6
# clients) with no connection failed; afterwards neither its namespace nor its echo servers
# remain.
#
#   tests/demo/demo_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)

. "$root/tests/support/needs_root.sh"

out=$(mktemp /tmp/tcpshift-demo-test.XXXXXX)
trap 'rm -f "$out"' EXIT
echoes() { pgrep -d ' ' -f "(^|/)tcpshift-echo( |$)" 2>/dev/null || true; }
before=" $(echoes) "

# 200 connections a tally: each from its own ephemeral port, so the flow hashes differ.
if ! CONNECTIONS=200 BUILD_DIR="$build/demo" timeout 900 "$root/scripts/demo.sh" >"$out" 2>&1; then
  echo "FAIL: demo.sh exited non-zero" >&2
  tail -30 "$out" >&2
  exit 1
fi
grep '^== built in' "$out"

# The tallies, one line each: "one TWO_COUNT ..." per section.
tallies=$(awk '
  /^== [0-9]+ (IPv6 )?connections/ { if (n) print one, two, failed; n++; one = 0; two = 0; failed = 0; next }
  /^== / { if (n) print one, two, failed; n = 0; next }
  n && $2 == "one" { one = $1 } n && $2 == "two" { two = $1 } n && /failed/ { failed += $1 }
' "$out")
echo "tallies (one two failed):"
echo "$tallies"
[ "$(echo "$tallies" | wc -l)" -eq 3 ] || { echo "FAIL: want three tallies" >&2; cat "$out" >&2; exit 1; }

status=0
check() {  # WHICH ONE TWO FAILED WANT_ONE_PERCENT
  local which=$1 one=$2 two=$3 failed=$4 want=$5
  local n=$((one + two + failed))
  # 200 draws: the binomial standard deviation is at most 7.1 connections; 4.5 of them is
  # 32. A table left at 50/50 gives v1 100 where 20/80 wants 40, and fails.
  local expect=$((n * want / 100)) slack=32
  if [ "$failed" -ne 0 ] || [ "$n" -ne 200 ] || [ "$one" -lt $((expect - slack)) ] || [ "$one" -gt $((expect + slack)) ]; then
    echo "FAIL: $which: v1 $one, v2 $two, failed $failed of $n; want v1 $expect +- $slack, nothing failed" >&2
    status=1
  fi
}
read -r a b c <<<"$(echo "$tallies" | sed -n 1p)"; check "50/50, IPv4" "$a" "$b" "$c" 50
read -r a b c <<<"$(echo "$tallies" | sed -n 2p)"; check "20/80, IPv4" "$a" "$b" "$c" 20
read -r a b c <<<"$(echo "$tallies" | sed -n 3p)"; check "20/80, IPv6" "$a" "$b" "$c" 20

if ip netns list | grep -q '^tcpshift-demo-'; then
  echo "FAIL: the demo's network namespace remains: $(ip netns list | grep '^tcpshift-demo-')" >&2
  status=1
fi
for _ in $(seq 20); do  # the killed echo servers may take a moment to go
  left=""
  for p in $(echoes); do case "$before" in *" $p "*) ;; *) left+=" $p" ;; esac; done
  [ -z "$left" ] && break
  sleep 0.1
done
if [ -n "$left" ]; then
  echo "FAIL: echo servers of the demo remain:$left" >&2
  status=1
fi
exit $status
