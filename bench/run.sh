#!/usr/bin/env bash
# Side-by-side benchmark: tcpshift against a direct connection, tcpshift's hook alone,
# nftables DNAT (kube-proxy's nftables style) and HAProxy (mode tcp), all against the same
# tcp-echo and iperf3 backends in one throwaway network namespace, interleaved in rounds.
#
#   sudo bench/run.sh [--quick] [--rounds N] [--no-scale]
#
# Workloads, per configuration and round:
#   crr   connect, one request and reply, close: connections/s from 4 concurrent clients
#         (tcpshift-loadgen), with the CPU time the whole machine spent per connection (perf)
#   lat   the same with one client: p50 and p99 of connect plus the first round trip
#   bulk  iperf3 over one long connection: Gbit/s
# and, for the configurations with the hook, the sk_lookup program's own cost per lookup
# from the kernel's BPF stats (run_time_ns / run_cnt).
# Scale: lookup cost, apply time and map memory for 1 to 10,000 services and 2 to 256 backends.
#
# Results: bench/results/latest.md (table), latest.png (chart), latest.jsonl (every sample);
# the README's benchmark section is rewritten from them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

quick=0
rounds=""
scale=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --rounds) rounds="$2"; shift ;;
    --no-scale) scale=0 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown argument $1; see bench/run.sh --help" >&2; exit 2 ;;
  esac
  shift
done
if [ "$(id -u)" -ne 0 ]; then
  echo "bench: needs root for network namespaces, BPF and nftables; run it with sudo" >&2
  exit 1
fi

if [ "$quick" = 1 ]; then
  rounds=${rounds:-5}; crr_ms=700; lat_ms=300; bulk_s=1; scale_points="1 100 1000 10000"; backend_points="2 16 256"
else
  rounds=${rounds:-7}; crr_ms=3000; lat_ms=1000; bulk_s=3; scale_points="1 10 100 1000 10000"; backend_points="2 4 16 64 256"
fi

"$root/scripts/setup.sh" --bench
"$root/scripts/build.sh"
bin="$root/build"
tcpshift="$bin/tcpshift"
loadgen="$bin/tcpshift-loadgen"

out="$root/bench/results"
mkdir -p "$out"
samples="$out/latest.jsonl"
scale_file="$out/scale.jsonl"
: > "$samples"
: > "$scale_file"

ns="tsbench-$$"
work=$(mktemp -d /tmp/tcpshift-bench.XXXXXX)
pids=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  "$tcpshift" detach --netns "$ns" >/dev/null 2>&1
  ip netns del "$ns" 2>/dev/null
  sysctl -q kernel.bpf_stats_enabled="$stats_before" 2>/dev/null
  rm -rf "$work"
}
stats_before=$(sysctl -n kernel.bpf_stats_enabled)
trap cleanup EXIT

ip netns add "$ns"
ip -n "$ns" link set lo up
in_ns() { ip netns exec "$ns" "$@"; }
start() {  # start a process in the namespace, remembered for cleanup
  in_ns "$@" >>"$work/daemons.log" 2>&1 &
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
start iperf3 -s -p 5201
start iperf3 -s -p 5202
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
for p in 9001 9002 5201 5202 31402 31502; do wait_port "$p"; done

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

# target echo port, target bulk port, and the state each configuration needs
declare -A echo_port=([direct]=9002 [hook]=9002 [tcpshift]=31400 [nftables]=31401 [haproxy]=31402)
declare -A bulk_port=([direct]=5202 [hook]=5202 [tcpshift]=31500 [nftables]=31501 [haproxy]=31502)
configs=(direct hook tcpshift nftables haproxy)

prepare() {
  case "$1" in
    hook|tcpshift) tcpshift_on ;;
    *) tcpshift_off ;;
  esac
  [ "$1" = nftables ] && in_ns nft -f "$work/nft.conf"
  return 0
}
finish() {
  [ "$1" = nftables ] && in_ns nft delete table ip tcpshift_bench
  return 0
}

# CPU time the whole machine spent: perf counts cycles where the PMU is virtualised, and
# cpu-clock (CPU ms) where it is not.
cpu_event=cycles
perf stat -a -e cycles -x, -o "$work/perf-probe" true 2>/dev/null || true
grep -q '^[0-9]' "$work/perf-probe" 2>/dev/null || cpu_event=cpu-clock

measure() {  # measure CONFIG ROUND
  local c=$1 r=$2 port=${echo_port[$1]} before after prog=""
  prepare "$c"
  if [ "$c" = hook ] || [ "$c" = tcpshift ]; then prog=$(lookup_prog_id); before=$(prog_stats "$prog"); fi
  perf stat -a -e "$cpu_event" -x, -o "$work/perf" -- \
    "$loadgen" --netns "$ns" -t "127.0.0.1:$port" -c 4 -d "$crr_ms" >"$work/crr.json"
  [ -n "$prog" ] && after=$(prog_stats "$prog")
  "$loadgen" --netns "$ns" -t "127.0.0.1:$port" -c 1 -d "$lat_ms" >"$work/lat.json"
  in_ns iperf3 -c 127.0.0.1 -p "${bulk_port[$c]}" -t "$bulk_s" -J >"$work/bulk.json"
  finish "$c"

  local cpu lookup_ns=null
  cpu=$(awk -F, -v e="$cpu_event" '$3 == e || $3 ~ e {print $1}' "$work/perf" | head -1)
  [ -z "$cpu" ] && cpu=null
  if [ -n "$prog" ]; then
    read -r c0 t0 <<<"$before"
    read -r c1 t1 <<<"$after"
    [ "$c1" -gt "$c0" ] && lookup_ns=$(((t1 - t0) / (c1 - c0)))
  fi
  jq -cn --arg config "$c" --argjson round "$r" --arg cpu_event "$cpu_event" --argjson cpu "$cpu" \
    --argjson lookup_ns "$lookup_ns" --slurpfile crr "$work/crr.json" --slurpfile lat "$work/lat.json" \
    --slurpfile bulk "$work/bulk.json" '{
      config: $config, round: $round,
      cps: $crr[0].connections_per_s, crr_failed: $crr[0].failed, crr_connections: $crr[0].connections,
      crr_errors: $crr[0].first_errors,
      by_reply: $crr[0].by_reply,
      cpu_per_conn: (if $cpu == null or $crr[0].connections == 0 then null
                     else (if $cpu_event == "cycles" then $cpu / $crr[0].connections
                           else $cpu * 1000 / $crr[0].connections end) end),
      cpu_unit: (if $cpu_event == "cycles" then "cycles" else "CPU us" end),
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
  scale_run() {  # KIND N FILE PORT MAX_SERVICES
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
    read -r c0 ns0 <<<"$before"
    read -r c1 ns1 <<<"$after"
    mem=0
    for m in "$(pin_dir)"/*; do
      case "$m" in *link_*) continue ;; esac
      mem=$((mem + $(bpftool --json map show pinned "$m" | jq '.bytes_memlock // 0')))
    done
    jq -cn --arg kind "$1" --argjson n "$2" --argjson apply_ms $(((t1 - t0) / 1000000)) \
      --argjson lookup_ns $(((ns1 - ns0) / (c1 > c0 ? c1 - c0 : 1))) --argjson map_bytes "$mem" \
      --slurpfile run "$work/scale.json" \
      '{kind: $kind, n: $n, apply_ms: $apply_ms, lookup_ns: $lookup_ns, map_bytes: $map_bytes,
        failed: $run[0].failed, failures: $run[0].failures, first_errors: $run[0].first_errors,
        cps: $run[0].connections_per_s}' >>"$scale_file"
  }
  for n in $scale_points; do
    gen_services "$n" >"$work/services.yaml"
    scale_run services "$n" "$work/services.yaml" $((20000 + n)) $((n > 256 ? n : 256))
    echo "bench: scale $n services done"
  done
  for b in $backend_points; do
    gen_backends "$b" >"$work/backends.yaml"
    scale_run backends "$b" "$work/backends.yaml" 31999 256
    echo "bench: scale $b backends done"
  done
  tcpshift_off
fi

"$root/bench/report.sh" "$out" "$quick" "$rounds"
echo "bench: finished in $(($(date +%s) - started)) s; results in bench/results/latest.md"
