#!/usr/bin/env bash
# The tcp-echo scenario of Istio's TCP traffic shifting task, on this host, in a throwaway
# network namespace: backends v1 ("one") and v2 ("two"), a frontend on port 31400,
# 50/50 and then 20/80, each counted over a few hundred `echo hello | nc` connections.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
connections=${CONNECTIONS:-300}

if [ "$(id -u)" -ne 0 ]; then
  echo "demo: needs root to load BPF programs and create a network namespace; run: sudo $0" >&2
  exit 1
fi

"$root/scripts/setup.sh"
# Only what the demo runs, the CLI and the echo server, in its own directory: each library
# compiled in few translation units, at -O1 and without debug information, in about a fifth of
# the time of the build the tests use (./build). The data path is BPF, built the same either way.
bin="${BUILD_DIR:-$root/build-demo}"
started=$(date +%s)
BUILD_DIR="$bin" BUILD_TARGETS="tcpshift tcpshift-echo" "$root/scripts/build.sh" \
  -DCMAKE_UNITY_BUILD=ON -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -DNDEBUG"
echo "== built in $(($(date +%s) - started)) s"

ns="tcpshift-demo-$$"
config=$(mktemp --suffix=.yaml)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  "$bin/tcpshift" detach --netns "$ns" >/dev/null 2>&1 || true
  ip netns del "$ns" 2>/dev/null || true
  rm -f "$config"
}
trap cleanup EXIT

ip netns add "$ns"
ip -n "$ns" link set lo up
echo "== network namespace $ns"

# Dual-stack backends: one listener on [::]:PORT takes IPv4 and IPv6 clients.
ip netns exec "$ns" "$bin/tcpshift-echo" --listen "[::]:9001" --prefix one >/dev/null &
pids+=($!)
ip netns exec "$ns" "$bin/tcpshift-echo" --listen "[::]:9002" --prefix two >/dev/null &
pids+=($!)

cat >"$config" <<'YAML'
apiVersion: tcpshift.io/v1alpha1
kind: TrafficShift
metadata:
  name: tcp-echo
spec:
  listen: ["0.0.0.0:31400", "[::]:31400"]
  subsets:
  - name: v1
    weight: 50
    backends: ["127.0.0.1:9001", "[::1]:9001"]
  - name: v2
    weight: 50
    backends: ["127.0.0.1:9002", "[::1]:9002"]
YAML

tallies() {
  local address=${1:-127.0.0.1}
  for _ in $(seq "$connections"); do
    echo hello | ip netns exec "$ns" nc -N -w 3 "$address" 31400 || echo "failed"
  done | sort | uniq -c
}

echo "== tcpshift apply -f tcp-echo.yaml   (v1 50, v2 50)"
"$bin/tcpshift" apply -f "$config" --netns "$ns"
sleep 0.2
"$bin/tcpshift" status --netns "$ns"
echo "== $connections connections: echo hello | nc 127.0.0.1 31400"
tallies

echo "== tcpshift set tcp-echo v1=20 v2=80"
"$bin/tcpshift" set tcp-echo v1=20 v2=80 --netns "$ns"
echo "== $connections connections: echo hello | nc 127.0.0.1 31400"
tallies
echo "== $connections IPv6 connections: echo hello | nc ::1 31400"
tallies ::1

echo "== tcpshift stats"
"$bin/tcpshift" stats --netns "$ns"
echo "== tcpshift detach; namespace $ns removed"
