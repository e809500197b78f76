#!/usr/bin/env bash
# Connect-time steering against a direct connection and kube-proxy-style nftables DNAT, for a
# client pod calling two echo pods on one simulated node, interleaved in rounds.
#
#   sudo bench/connect.sh [--quick] [--rounds N] [--seconds S] [--no-build] [--out DIR] [--no-readme]
#
# The node is built with plain `ip netns`, as tests/support/pod_fixture.cpp builds it: a node
# namespace with the bridge tsbr0 (10.244.0.1/16), the echo pods "one" (10.244.0.11) and "two"
# (10.244.0.12) running tcpshift-echo on port 9000, and a client pod (10.244.0.100) whose load
# generator runs in a cgroup made here (the pods' servers in another). Setups, each against
# the same two pods:
#   direct    the client connects to the pods' own addresses, one then the other
#   hook      tcpshift attached, the client connecting to port 9100 of the pods, which no
#             frontend uses: what every other connect() of the cgroup pays
#   nftables  the client connects to 10.96.0.50:9000; a nat table in the client pod's namespace
#             DNATs it in the output hook to one pod or the other (numgen random mod 2), laid
#             out as kube-proxy's nftables mode lays out a service
#   tcpshift  the client connects to 10.96.0.50:9000; `tcpshift attach --netns NODE --cgroup CG`
#             and a 50/50 TrafficShift rewrite its connect() to a pod
# Per setup and round: connections/s from 4 clients (connect, one echo, close), the CPU time
# per connection of the client's cgroup and of the pods' cgroup, and the BPF programs' own time;
# then p50 and p99 of connect plus the echo with one client. Where other work shares the
# machine, connections per CPU-second compare the setups better than connections/s do.
# --seconds sets how long the load runs (the latency run takes a third of it).
#
# Results: bench/results/connect.jsonl (every sample), connect.md (the table); the README's
# connect-time table is rewritten from them (bench/connect-report.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

quick=0
rounds=""
seconds=""
build=1
out="$root/bench/results"
readme=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --rounds) rounds="$2"; shift ;;
    --seconds) seconds="$2"; shift ;;
    --no-build) build=0 ;;
    --out) out="$2"; shift ;;
    --no-readme) readme=0 ;;
    -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown argument $1; see bench/connect.sh --help" >&2; exit 2 ;;
  esac
  shift
done
if [ "$(id -u)" -ne 0 ]; then
  echo "bench: needs root for network namespaces, cgroups, BPF and nftables; run it with sudo" >&2
  exit 1
fi
# One run at a time (bench/run.sh --connect holds the lock for it).
if [ -z "${TCPSHIFT_BENCH_LOCKED:-}" ]; then
  exec 9>/run/lock/tcpshift-bench.lock
  if ! flock -n 9; then
    echo "bench: another benchmark run holds /run/lock/tcpshift-bench.lock; wait for it to end" >&2
    exit 1
  fi
  export TCPSHIFT_BENCH_LOCKED=1
fi
for tool in ip nft jq bpftool; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (scripts/setup.sh --bench)" >&2; exit 1; }
done

if [ "$quick" = 1 ]; then
  rounds=${rounds:-3}; seconds=${seconds:-1}
else
  rounds=${rounds:-5}; seconds=${seconds:-3}
fi
crr_ms=$(awk -v s="$seconds" 'BEGIN {printf "%d", s * 1000}')
lat_ms=$((crr_ms / 3))
bin=${BUILD_DIR:-$root/build}
[ "$build" = 1 ] && BUILD_DIR="$bin" "$root/scripts/build.sh"
tcpshift="$bin/tcpshift"
loadgen="$bin/tcpshift-loadgen"
echo_server="$bin/tcpshift-echo"

mkdir -p "$out"
samples="$out/connect.jsonl"
: >"$samples"

tag="tsct$$"
node="$tag-node"
client="$tag-client"
pods=("$tag-one" "$tag-two")
cgroup_root=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
[ -n "$cgroup_root" ] || { echo "bench: no cgroup2 hierarchy is mounted" >&2; exit 1; }
cg="$cgroup_root/$tag"
pods_cg="$cgroup_root/$tag-pods"
work=$(mktemp -d /tmp/tcpshift-ct-bench.XXXXXX)
stats_before=$(sysctl -n kernel.bpf_stats_enabled)
pids=()

cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  # A client left running (an interrupted run) dies with its cgroup: cgroup.kill where the
  # kernel has it (5.14), each process otherwise.
  for dir in "$cg" "$pods_cg"; do
    [ -d "$dir" ] || continue
    echo 1 >"$dir/cgroup.kill" 2>/dev/null || xargs -r kill -9 <"$dir/cgroup.procs" 2>/dev/null
  done
  wait 2>/dev/null
  "$tcpshift" detach --netns "$node" >/dev/null 2>&1
  for ns in "$client" "${pods[@]}" "$node"; do ip netns del "$ns" 2>/dev/null; done
  for dir in "$cg" "$pods_cg"; do
    [ -d "$dir" ] || continue
    for _ in $(seq 50); do rmdir "$dir" 2>/dev/null && break; sleep 0.05; done
  done
  sysctl -q kernel.bpf_stats_enabled="$stats_before"
  rm -rf "$work"
}
trap cleanup EXIT
# A signal ends the run through the EXIT trap, so what it started is stopped too.
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# The node and its pods. No IPv6: every setup here is IPv4.
pod() {  # NAME INDEX: a namespace whose eth0 hangs on the node's bridge as vp<INDEX>
  ip netns add "$1"
  ip -n "$1" link set lo up
  ip -n "$1" link add eth0 type veth peer name "vp$2" netns "$node"
  ip -n "$node" link set "vp$2" master tsbr0 up
  ip -n "$1" addr add "10.244.0.$2/16" dev eth0
  ip -n "$1" link set eth0 up
  ip -n "$1" route add default via 10.244.0.1
}
ip netns add "$node"
ip -n "$node" link set lo up
ip -n "$node" link add tsbr0 type bridge mcast_snooping 0
ip -n "$node" addr add 10.244.0.1/16 dev tsbr0
ip -n "$node" link set tsbr0 up
ip netns exec "$node" sysctl -qw net.ipv4.ip_forward=1
pod "${pods[0]}" 11
pod "${pods[1]}" 12
pod "$client" 100
# Each setup opens tens of thousands of connections a round, and the client closes first: let
# it reuse its TIME_WAIT ports, from a wide range, so no setup runs out of them.
ip netns exec "$client" sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65535"
mkdir "$cg" "$pods_cg"

in_cgroup() {  # CGROUP COMMAND...: runs COMMAND in CGROUP from its start
  # shellcheck disable=SC2016
  sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$@"
}
start_echo() {  # POD ADDRESS WORD; not through in_cgroup, so that $! is the server itself
  # shellcheck disable=SC2016
  sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$pods_cg" ip netns exec "$1" "$echo_server" \
    -l "$2:9000" -l "$2:9100" -p "$3" >>"$work/daemons.log" 2>&1 &
  pids+=($!)
}
start_echo "${pods[0]}" 10.244.0.11 one
start_echo "${pods[1]}" 10.244.0.12 two
for p in "${pods[@]}"; do
  for _ in $(seq 100); do
    [ "$(ip netns exec "$p" ss -Hltn | wc -l)" -ge 2 ] && break
    sleep 0.05
  done
done

# kube-proxy's nftables layout for one ClusterIP service: a verdict map of service addresses,
# a chain per service drawing an endpoint with numgen, a chain per endpoint doing the DNAT. It
# is in the output hook of the client pod's own namespace: the client's own stack translates,
# as connect-time steering rewrites in the client's own connect(), and the packets take the
# same path as direct ones (pod to pod over the bridge). See bench/README.md for why not the
# node's prerouting hook.
cat >"$work/nft.conf" <<'EOF'
table ip tsct_kube {
  map service_ips {
    type ipv4_addr . inet_proto . inet_service : verdict
    elements = { 10.96.0.50 . tcp . 9000 : goto svc_echo }
  }
  chain output {
    type nat hook output priority -100; policy accept;
    ip daddr . meta l4proto . th dport vmap @service_ips
  }
  chain svc_echo {
    numgen random mod 2 vmap { 0 : goto ep_one, 1 : goto ep_two }
  }
  chain ep_one {
    meta l4proto tcp dnat to 10.244.0.11:9000
  }
  chain ep_two {
    meta l4proto tcp dnat to 10.244.0.12:9000
  }
}
EOF

cat >"$work/tcpshift.yaml" <<'EOF'
apiVersion: tcpshift.io/v1alpha1
kind: TrafficShift
metadata: {name: echo}
spec:
  listen: ["10.96.0.50:9000"]
  subsets:
  - {name: one, weight: 50, backends: ["10.244.0.11:9000"]}
  - {name: two, weight: 50, backends: ["10.244.0.12:9000"]}
EOF

sysctl -q kernel.bpf_stats_enabled=1
pin_dir="/sys/fs/bpf/tcpshift/$(ip netns exec "$node" stat -L -c %i /proc/self/ns/net)"
tcpshift_on() {
  [ -e "$pin_dir" ] && return 0
  "$tcpshift" attach --netns "$node" --cgroup "$cg" >/dev/null
  "$tcpshift" apply --netns "$node" -f "$work/tcpshift.yaml" >/dev/null 2>>"$work/daemons.log" || {
    tail -n 5 "$work/daemons.log" >&2
    return 1
  }
}
tcpshift_off() { "$tcpshift" detach --netns "$node" >/dev/null 2>&1 || true; }
bpf_stats() {  # LINK: "run_cnt run_time_ns" of the program behind a pinned link, or "0 0"
  local id
  [ -e "$pin_dir/$1" ] || { echo "0 0"; return; }
  id=$(bpftool --json link show pinned "$pin_dir/$1" | jq .prog_id)
  bpftool --json prog show id "$id" | jq -r '"\(.run_cnt // 0) \(.run_time_ns // 0)"'
}
cpu_us() { awk '$1 == "usage_usec" {print $2}' "$1/cpu.stat"; }  # CGROUP
idle_us() { awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" {printf "%.0f\n", $5 * 1e6 / hz}' /proc/stat; }

# What each setup connects to, and the state it needs. tcpshift is detached outside its own
# setups, and the nat table exists only during its own: otherwise every connection would pay
# for the hook, or for conntrack.
declare -A targets=(
  [direct]="-t 10.244.0.11:9000 -t 10.244.0.12:9000"
  [hook]="-t 10.244.0.11:9100 -t 10.244.0.12:9100"
  [nftables]="-t 10.96.0.50:9000"
  [tcpshift]="-t 10.96.0.50:9000"
)
setups=(direct hook nftables tcpshift)
prepare() {
  case "$1" in
    hook|tcpshift) tcpshift_on ;;
    *) tcpshift_off ;;
  esac
  [ "$1" = nftables ] && ip netns exec "$client" nft -f "$work/nft.conf"
  return 0
}
finish() {
  [ "$1" = nftables ] && ip netns exec "$client" nft delete table ip tsct_kube
  return 0
}
in_client() { in_cgroup "$cg" "$loadgen" --netns "$client" "$@"; }  # tcpshift-loadgen ARGS...

measure() {  # SETUP ROUND
  local s=$1 r=$2 cpu0 cpu1 pods0 pods1 idle0 idle1 c4a c4b soa sob
  prepare "$s"
  c4a=$(bpf_stats link_connect4); soa=$(bpf_stats link_sock_ops)
  cpu0=$(cpu_us "$cg"); pods0=$(cpu_us "$pods_cg"); idle0=$(idle_us)
  # shellcheck disable=SC2086
  in_client ${targets[$s]} -c 4 -d "$crr_ms" >"$work/crr.json"
  cpu1=$(cpu_us "$cg"); pods1=$(cpu_us "$pods_cg"); idle1=$(idle_us)
  c4b=$(bpf_stats link_connect4); sob=$(bpf_stats link_sock_ops)
  # shellcheck disable=SC2086
  in_client ${targets[$s]} -c 1 -d "$lat_ms" >"$work/lat.json"
  finish "$s"
  jq -cn --arg setup "$s" --argjson round "$r" --argjson cg_us $((cpu1 - cpu0)) \
    --argjson pods_us $((pods1 - pods0)) --argjson idle_us $((idle1 - idle0)) --arg c4 "$c4a $c4b" --arg so "$soa $sob" \
    --slurpfile crr "$work/crr.json" --slurpfile lat "$work/lat.json" '
    def delta: split(" ") | map(tonumber) | {cnt: (.[2] - .[0]), ns: (.[3] - .[1])};
    ($c4 | delta) as $c4 | ($so | delta) as $so | $crr[0].connections as $n | {
      setup: $setup, round: $round, connections: $n, failed: ($crr[0].failed + $lat[0].failed),
      errors: ($crr[0].first_errors + $lat[0].first_errors), by_reply: $crr[0].by_reply,
      cps: $crr[0].connections_per_s,
      load_p50_us: $crr[0].latency_us.p50, load_p99_us: $crr[0].latency_us.p99,
      p50_us: $lat[0].latency_us.p50, p99_us: $lat[0].latency_us.p99,
      client_cpu_us: (if $n > 0 then $cg_us / $n else null end),
      pods_cpu_us: (if $n > 0 then $pods_us / $n else null end),
      cpu_share: (($cg_us + $pods_us) / ($crr[0].duration_s * 1e6)), machine_idle_us: $idle_us,
      connect4_ns: (if $c4.cnt > 0 then $c4.ns / $c4.cnt else null end),
      bpf_ns_per_conn: (if $c4.cnt > 0 and $n > 0 then ($c4.ns + $so.ns) / $n else null end)}' >>"$samples"
}

# One short pass of each setup first, not recorded: neighbour entries, page cache, and a check
# that every setup answers before minutes are spent on it.
for s in "${setups[@]}"; do
  prepare "$s"
  # shellcheck disable=SC2086
  in_client ${targets[$s]} -c 1 -n 200 >"$work/warm.json"
  finish "$s"
  if [ "$(jq .ok "$work/warm.json")" != 200 ]; then
    echo "bench: $s does not answer: $(cat "$work/warm.json")" >&2
    exit 1
  fi
done

started=$(date +%s)
echo "bench: $rounds rounds of ${setups[*]} (connections/s ${crr_ms} ms, latency ${lat_ms} ms each)"
for r in $(seq 1 "$rounds"); do
  # A new order every round, so that no setup always runs first, last, or after the same one.
  for s in $(printf '%s\n' "${setups[@]}" | shuf); do
    measure "$s" "$r"
  done
  echo "bench: round $r done ($(($(date +%s) - started)) s)"
done
tcpshift_off

"$root/bench/connect-report.sh" "$out" "$rounds" "$seconds" "$readme"
cat "$out/connect.md"
