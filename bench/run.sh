#!/usr/bin/env bash
# Side-by-side benchmark: the host as it is without tcpshift (bare), the same host with
# tcpshift attached (straight to a backend, and to a port tcpshift has nothing to do with),
# steered by tcpshift, nftables DNAT (kube-proxy's nftables style) and HAProxy (mode tcp), all
# against the same tcp-echo and iperf3 backends in one throwaway network namespace,
# interleaved in rounds. Every configuration is a ratio to bare in the same round.
#
#   sudo bench/run.sh [--quick] [--rounds N] [--seconds S] [--no-scale] [--connect]
#                     [--out DIR] [--no-readme] [--no-build]
#
#   --quick      3 rounds of 0.7 s, 1 s of iperf3, fewer scale points: a check, not a result
#   --no-scale   skip the scale part (lookup microbenchmark; 1 to 10,000 services)
#   --rounds N   interleaved rounds (default 10, --quick 3)
#   --seconds S  connections/s load per configuration and round (default 3, --quick 0.7)
#   --connect    also run bench/connect.sh (connect-time steering) with the same rounds
#   --out DIR    where the results go (default bench/results)
#   --no-readme  leave the README's benchmark section as it is
#   --no-build   use the binaries in $BUILD_DIR (default ./build) as they are
#
# Workloads, per configuration and round:
#   crr   connect, one request and reply, close: connections/s from 4 concurrent clients
#         (tcpshift-loadgen), with the CPU time the whole machine spent per connection
#         (/proc/stat: all but idle and iowait)
#   lat   the same with one client: p50 and p99 of connect plus the first round trip
#   bulk  iperf3 over one long connection: Gbit/s
# and, for the configurations with the hook, the sk_lookup program's own cost per lookup
# from the kernel's BPF stats (run_time_ns / run_cnt).
# Scale: lookup cost, apply, set and status times and map memory for 1 to 10,000 services and
# 2 to 256 backends.
# Every process the run starts is stopped when it ends, interrupted or not.
#
# Results: bench/results/latest.md (table), latest.png (chart), latest.jsonl (every sample);
# the README's benchmark section is rewritten from them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

quick=0
rounds=""
seconds=""
scale=1
connect=0
readme=1
build=1
out="$root/bench/results"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --rounds|--seconds|--out)
      [ $# -ge 2 ] || { echo "bench: $1 needs a value; see bench/run.sh --help" >&2; exit 2; }
      case "$1" in
        --rounds) rounds="$2" ;;
        --seconds) seconds="$2" ;;
        --out) out="$2" ;;
      esac
      shift ;;
    --no-scale) scale=0 ;;
    --connect) connect=1 ;;
    --no-readme) readme=0 ;;
    --no-build) build=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown argument $1; see bench/run.sh --help" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$rounds" ] && ! [[ "$rounds" =~ ^[1-9][0-9]*$ ]]; then
  echo "bench: --rounds $rounds: give a whole number of at least 1" >&2
  exit 2
fi
if [ -n "$seconds" ] && ! [[ "$seconds" =~ ^[0-9]*\.?[0-9]+$ && "$seconds" != 0 ]]; then
  echo "bench: --seconds $seconds: give a duration in seconds above 0, e.g. 3 or 0.5" >&2
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "bench: needs root for network namespaces, BPF and nftables; run it with sudo" >&2
  exit 1
fi
# One run at a time: two would measure each other, and each restores the other's BPF stats
# setting. (connect.sh, run by --connect, holds the same lock through its parent.)
if [ -z "${TCPSHIFT_BENCH_LOCKED:-}" ]; then
  exec 9>/run/lock/tcpshift-bench.lock
  if ! flock -n 9; then
    echo "bench: another benchmark run holds /run/lock/tcpshift-bench.lock; wait for it to end" >&2
    exit 1
  fi
  export TCPSHIFT_BENCH_LOCKED=1
fi

if [ "$quick" = 1 ]; then
  rounds=${rounds:-3}; seconds=${seconds:-0.7}; bulk_s=1; scale_points="1 100 1000 10000"; backend_points="2 16 256"
else
  rounds=${rounds:-10}; seconds=${seconds:-3}; bulk_s=3; scale_points="1 10 100 1000 10000"; backend_points="2 4 16 64 256"
fi
crr_ms=$(awk -v s="$seconds" 'BEGIN {printf "%d", s * 1000}')
lat_ms=$((crr_ms / 3))

"$root/scripts/setup.sh" --bench
bin=${BUILD_DIR:-$root/build}
[ "$build" = 1 ] && BUILD_DIR="$bin" "$root/scripts/build.sh"
tcpshift="$bin/tcpshift"
loadgen="$bin/tcpshift-loadgen"

mkdir -p "$out"
out=$(cd "$out" && pwd)
samples="$out/latest.jsonl"
scale_file="$out/scale.jsonl"
: > "$samples"
: > "$scale_file"

ns="tsbench-$$"
work=$(mktemp -d /tmp/tcpshift-bench.XXXXXX)
pids=()
cleanup() {
  local rc=$?
  set +e
  if [ "$rc" != 0 ] && [ -s "$work/daemons.log" ]; then
    echo "bench: stopped with exit status $rc; the last lines of what it ran said:" >&2
    tail -n 15 "$work/daemons.log" >&2
  fi
  # The daemons, and anything else still running in the namespace: TERM, then KILL.
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null
  for _ in $(seq 50); do
    [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break
    sleep 0.1
  done
  ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
  wait 2>/dev/null
  "$tcpshift" detach --netns "$ns" >/dev/null 2>&1
  ip netns del "$ns" 2>/dev/null
  sysctl -q kernel.bpf_stats_enabled="$stats_before" 2>/dev/null
  rm -rf "$work"
}
stats_before=$(sysctl -n kernel.bpf_stats_enabled)
trap cleanup EXIT
# A signal ends the run through the EXIT trap, so what it started is stopped too.
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

ip netns add "$ns"
ip -n "$ns" link set lo up
in_ns() { ip netns exec "$ns" "$@"; }
start() {  # start a process in the namespace, remembered for cleanup
  # Not through in_ns: a function run in the background is a subshell, and $! would be the
  # subshell, not the daemon (ip netns exec execs the command, so $! is the daemon here).
  ip netns exec "$ns" "$@" >>"$work/daemons.log" 2>&1 &
  pids+=($!)
}
wait_port() {  # wait until something listens on 127.0.0.1:PORT in the namespace
  for _ in $(seq 100); do
    in_ns ss -Hltn "sport = :$1" | grep -q LISTEN && return 0
    sleep 0.05
  done
  echo "bench: nothing listens on port $1; what the daemons said:" >&2
  tail -n 20 "$work/daemons.log" >&2
  exit 1
}

# Backends: tcp-echo v1/v2 and iperf3 v1/v2.
start "$bin/tcpshift-echo" -l 127.0.0.1:9001 -p v1
start "$bin/tcpshift-echo" -l 127.0.0.1:9002 -p v2
start "$bin/tcpshift-echo" -l 127.0.0.1:9003 -p other
start iperf3 -s -p 5201
start iperf3 -s -p 5202
start iperf3 -s -p 5203
# HAProxy, a userspace proxy in Envoy's place: idle while the others run.
cat >"$work/haproxy.cfg" <<'EOF'
global
  maxconn 8000
defaults
  mode tcp
  timeout connect 2s
  timeout client 30s
  timeout server 30s
frontend echo
  bind 127.0.0.1:31402
  default_backend echo
backend echo
  balance roundrobin
  server v1 127.0.0.1:9001 weight 20
  server v2 127.0.0.1:9002 weight 80
frontend bulk
  bind 127.0.0.1:31502
  default_backend bulk
backend bulk
  # iperf3's control and data connections must meet the same server
  balance source
  server v1 127.0.0.1:5201 weight 20
  server v2 127.0.0.1:5202 weight 80
EOF
start haproxy -f "$work/haproxy.cfg"
for p in 9001 9002 9003 5201 5202 5203 31402 31502; do wait_port "$p"; done

# nftables: DNAT in the output hook, numgen for the split, as kube-proxy's nftables mode
# does; loaded only for its own runs, since conntrack would tax every other configuration.
cat >"$work/nft.conf" <<'EOF'
table ip tcpshift_bench {
  chain echo_v1 {
    meta l4proto tcp dnat to 127.0.0.1:9001
  }
  chain echo_v2 {
    meta l4proto tcp dnat to 127.0.0.1:9002
  }
  chain echo {
    numgen random mod 100 vmap { 0-19 : jump echo_v1, 20-99 : jump echo_v2 }
  }
  chain bulk_v1 {
    meta l4proto tcp dnat to 127.0.0.1:5201
  }
  chain bulk_v2 {
    meta l4proto tcp dnat to 127.0.0.1:5202
  }
  chain bulk_split {
    jhash ip saddr mod 100 vmap { 0-19 : jump bulk_v1, 20-99 : jump bulk_v2 }
  }
  chain output {
    type nat hook output priority -100;
    ip daddr 127.0.0.1 tcp dport 31401 jump echo
    ip daddr 127.0.0.1 tcp dport 31501 jump bulk_split
  }
}
EOF

# tcpshift: 20/80 for tcp-echo; source-ip affinity for iperf3, for the same reason as above.
cat >"$work/tcpshift.yaml" <<'EOF'
apiVersion: tcpshift.io/v1alpha1
kind: TrafficShift
metadata: {name: echo}
spec:
  listen: ["127.0.0.1:31400"]
  subsets:
  - {name: v1, weight: 20, backends: ["127.0.0.1:9001"]}
  - {name: v2, weight: 80, backends: ["127.0.0.1:9002"]}
---
apiVersion: tcpshift.io/v1alpha1
kind: TrafficShift
metadata: {name: bulk}
spec:
  listen: ["127.0.0.1:31500"]
  affinity: source-ip
  subsets:
  - {name: v1, weight: 20, backends: ["127.0.0.1:5201"]}
  - {name: v2, weight: 80, backends: ["127.0.0.1:5202"]}
EOF

# Programs that another namespace's tcpshift attached to a cgroup run for this run's
# connections too, bare ones included: say so, in the output and in the results.
others=$(bpftool cgroup tree 2>/dev/null | grep -cE 'register_and_count|connect_v[46]' || true)
if [ "${others:-0}" -gt 0 ]; then
  echo "bench: warning: $others tcpshift program(s) of other network namespaces are attached to cgroups" \
    "(bpftool cgroup tree); they run for every configuration here, bare included" >&2
fi
echo "${others:-0}" >"$out/foreign-hooks"

sysctl -q kernel.bpf_stats_enabled=1
pin_dir() { echo "/sys/fs/bpf/tcpshift/$(in_ns stat -L -c %i /proc/self/ns/net)"; }
lookup_prog_id() { bpftool --json link show pinned "$(pin_dir)/link_sk_lookup" | jq .prog_id; }
prog_stats() { bpftool --json prog show id "$1" | jq -r '"\(.run_cnt // 0) \(.run_time_ns // 0)"'; }

tcpshift_on() {
  if [ ! -e "$(pin_dir)" ]; then
    "$tcpshift" apply --netns "$ns" -f "$work/tcpshift.yaml" >/dev/null 2>>"$work/daemons.log"
  fi
}
tcpshift_off() { "$tcpshift" detach --netns "$ns" >/dev/null 2>&1 || true; }

# target echo port, target bulk port, and the state each configuration needs:
#   bare       straight to v2, tcpshift detached: the host as it was before tcpshift
#   attached   straight to v2 with tcpshift attached: a backend's own port, accounted by sock_ops
#   unrelated  tcpshift attached, to a port it has nothing to do with (no frontend, no backend)
#   tcpshift   steered through a frontend at 20/80
declare -A echo_port=([bare]=9002 [attached]=9002 [unrelated]=9003 [tcpshift]=31400 [nftables]=31401 [haproxy]=31402)
declare -A bulk_port=([bare]=5202 [attached]=5202 [unrelated]=5203 [tcpshift]=31500 [nftables]=31501 [haproxy]=31502)
configs=(bare attached unrelated tcpshift nftables haproxy)
with_hook() { [ "$1" = attached ] || [ "$1" = unrelated ] || [ "$1" = tcpshift ]; }

prepare() {
  case "$1" in
    attached|unrelated|tcpshift) tcpshift_on ;;
    *) tcpshift_off ;;
  esac
  [ "$1" = nftables ] && in_ns nft -f "$work/nft.conf"
  return 0
}
finish() {
  [ "$1" = nftables ] && in_ns nft delete table ip tcpshift_bench
  return 0
}

# CPU time the whole machine spent, from /proc/stat: every CPU's time but idle and iowait.
# (perf's system-wide cpu-clock counts the idle time too, so it would only give 1/rate.)
busy_us() {
  awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" {printf "%.0f\n", ($2 + $3 + $4 + $7 + $8 + $9) * 1e6 / hz}' /proc/stat
}

measure() {  # measure CONFIG ROUND
  local c=$1 r=$2 port=${echo_port[$1]} before after prog=""
  prepare "$c"
  if with_hook "$c"; then prog=$(lookup_prog_id); before=$(prog_stats "$prog"); fi
  local busy0 busy1
  busy0=$(busy_us)
  "$loadgen" --netns "$ns" -t "127.0.0.1:$port" -c 4 -d "$crr_ms" >"$work/crr.json"
  busy1=$(busy_us)
  [ -n "$prog" ] && after=$(prog_stats "$prog")
  "$loadgen" --netns "$ns" -t "127.0.0.1:$port" -c 1 -d "$lat_ms" >"$work/lat.json"
  in_ns iperf3 -c 127.0.0.1 -p "${bulk_port[$c]}" -t "$bulk_s" -J >"$work/bulk.json"
  finish "$c"

  local lookup_ns=null
  if [ -n "$prog" ]; then
    read -r c0 t0 <<<"$before"
    read -r c1 t1 <<<"$after"
    [ "$c1" -gt "$c0" ] && lookup_ns=$(((t1 - t0) / (c1 - c0)))
  fi
  jq -cn --arg config "$c" --argjson round "$r" --argjson cpu_us $((busy1 - busy0)) \
    --argjson lookup_ns "$lookup_ns" --slurpfile crr "$work/crr.json" --slurpfile lat "$work/lat.json" \
    --slurpfile bulk "$work/bulk.json" '{
      config: $config, round: $round,
      cps: $crr[0].connections_per_s, crr_failed: $crr[0].failed, crr_connections: $crr[0].connections,
      crr_errors: $crr[0].first_errors,
      by_reply: $crr[0].by_reply,
      cpu_per_conn: (if $crr[0].connections == 0 then null else $cpu_us / $crr[0].connections end),
      cpu_unit: "CPU µs",
      p50_us: $lat[0].latency_us.p50, p99_us: $lat[0].latency_us.p99, lat_failed: $lat[0].failed,
      gbps: (($bulk[0].end.sum_received.bits_per_second // 0) / 1e9),
      bulk_error: ($bulk[0].error // null),
      lookup_ns: $lookup_ns}' >>"$samples"
}

started=$(date +%s)
echo "bench: $rounds rounds of ${configs[*]} (crr ${crr_ms} ms, latency ${lat_ms} ms, bulk ${bulk_s} s each)"
for r in $(seq 1 "$rounds"); do
  # Rotate the order every round, so no configuration always runs first or last.
  for i in $(seq 0 $((${#configs[@]} - 1))); do
    c=${configs[$(((i + r) % ${#configs[@]}))]}
    measure "$c" "$r"
  done
  echo "bench: round $r done ($(($(date +%s) - started)) s)"
done
tcpshift_off

if [ "$scale" = 1 ]; then
  # The program alone, timed by the kernel with BPF_PROG_TEST_RUN (no sockets, no stats).
  "$bin/tcpshift-lookup-bench" --benchmark_format=json --benchmark_out="$out/lookup.json" \
    --benchmark_out_format=json >/dev/null 2>>"$work/daemons.log"
  echo "bench: lookup microbenchmark done"

  # Scale: N services on consecutive ports, each 50/50 over the two echo backends, and one
  # service with B backends. Every port stays below the ephemeral range (32768-60999): a
  # client whose source port equals the port it connects to on loopback connects to itself. Lookup cost is measured on the last service, the one added last.
  gen_services() {  # N
    for i in $(seq 1 "$1"); do
      printf -- '---\napiVersion: tcpshift.io/v1alpha1\nkind: TrafficShift\nmetadata: {name: s%d}\nspec:\n  listen: ["127.0.0.1:%d"]\n  subsets:\n  - {name: v1, weight: 50, backends: ["127.0.0.1:9001"]}\n  - {name: v2, weight: 50, backends: ["127.0.0.1:9002"]}\n' "$i" $((20000 + i))
    done
  }
  gen_backends() {  # B, listening on 127.0.0.1:10001..B
    printf 'apiVersion: tcpshift.io/v1alpha1\nkind: TrafficShift\nmetadata: {name: wide}\nspec:\n  listen: ["127.0.0.1:31999"]\n  subsets:\n'
    for i in $(seq 1 "$1"); do
      printf '  - {name: b%d, weight: 1, backends: ["127.0.0.1:%d"]}\n' "$i" $((10000 + i))
    done
  }
  listen_args=()
  for i in $(seq 1 256); do listen_args+=(-l "127.0.0.1:$((10000 + i))"); done
  start "$bin/tcpshift-echo" "${listen_args[@]}" -p wide
  wait_port 10256
  scale_run() {  # KIND N FILE PORT MAX_SERVICES SERVICE SUBSET=WEIGHT
    tcpshift_off
    "$tcpshift" attach --netns "$ns" --max-services "$5" >/dev/null
    local t0 t1 prog before after mem
    t0=$(date +%s%N)
    "$tcpshift" apply --netns "$ns" -f "$3" >/dev/null 2>>"$work/daemons.log"
    t1=$(date +%s%N)
    prog=$(lookup_prog_id)
    before=$(prog_stats "$prog")
    "$loadgen" --netns "$ns" -t "127.0.0.1:$4" -c 4 -d "$crr_ms" >"$work/scale.json"
    after=$(prog_stats "$prog")
    # One service's weights shifted, then the status of all: the control plane at this size.
    local s0 s1 st0 st1
    s0=$(date +%s%N)
    "$tcpshift" set --netns "$ns" "$6" "$7" >/dev/null 2>>"$work/daemons.log"
    s1=$(date +%s%N)
    "$tcpshift" status --netns "$ns" >/dev/null 2>>"$work/daemons.log"
    st1=$(date +%s%N)
    st0=$s1
    read -r c0 ns0 <<<"$before"
    read -r c1 ns1 <<<"$after"
    mem=0
    for m in "$(pin_dir)"/*; do
      case "$m" in *link_*) continue ;; esac
      mem=$((mem + $(bpftool --json map show pinned "$m" | jq '.bytes_memlock // 0')))
    done
    jq -cn --arg kind "$1" --argjson n "$2" --argjson apply_ms $(((t1 - t0) / 1000000)) \
      --argjson set_ms $(((s1 - s0) / 1000000)) --argjson status_ms $(((st1 - st0) / 1000000)) \
      --argjson lookup_ns $(((ns1 - ns0) / (c1 > c0 ? c1 - c0 : 1))) --argjson map_bytes "$mem" \
      --slurpfile run "$work/scale.json" \
      --argjson max_services "$5" \
      '{kind: $kind, n: $n, max_services: $max_services, apply_ms: $apply_ms, set_ms: $set_ms, status_ms: $status_ms,
        lookup_ns: $lookup_ns, map_bytes: $map_bytes,
        failed: $run[0].failed, failures: $run[0].failures, first_errors: $run[0].first_errors,
        cps: $run[0].connections_per_s}' >>"$scale_file"
  }
  for n in $scale_points; do
    gen_services "$n" >"$work/services.yaml"
    scale_run services "$n" "$work/services.yaml" $((20000 + n)) $((n > 256 ? n : 256)) "s$n" v1=60
    echo "bench: scale $n services done"
  done
  for b in $backend_points; do
    gen_backends "$b" >"$work/backends.yaml"
    scale_run backends "$b" "$work/backends.yaml" 31999 256 wide b1=2
    echo "bench: scale $b backends done"
  done
  tcpshift_off
fi

if [ "$connect" = 1 ]; then
  BUILD_DIR="$bin" "$root/bench/connect.sh" --no-build --rounds "$rounds" --seconds "$seconds" --out "$out" \
    $([ "$readme" = 0 ] && echo --no-readme)
fi

"$root/bench/report.sh" "$out" "$quick" "$rounds" "$readme"
echo "bench: finished in $(($(date +%s) - started)) s; results in $out/latest.md"
