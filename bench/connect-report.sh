#!/usr/bin/env bash
# Turns bench/results/connect.jsonl into connect-summary.json and connect.md, and rewrites the
# README's connect-time table from them.
#   bench/connect-report.sh RESULTS_DIR ROUNDS SECONDS [README(1|0)]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$1
rounds=$2
seconds=$3
readme=${4:-1}
samples="$out/connect.jsonl"

cpu_model=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
machine="$(nproc) CPUs ($cpu_model), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r)"
run="$rounds rounds, ${seconds} s of load per setup and round"

# Per setup: medians over rounds, and for ratios the median and range of the per-round ratio
# to direct (rounds are interleaved, so each ratio pairs runs close in time).
summary=$(jq -n --slurpfile samples "$samples" '
    def median: map(select(. != null)) | sort
      | if length == 0 then null else .[(length - 1) / 2 | floor] end;
    def ratio(f): map(f) | {median: median, min: min, max: max};
    ($samples | map(select(.setup == "direct")) | map({key: (.round | tostring), value: .}) | from_entries) as $direct
    | ["direct", "hook", "nftables", "tcpshift"]
    | map(. as $s | [$samples[] | select(.setup == $s)] as $x | {
        setup: $s,
        cps: ($x | map(.cps) | median),
        cps_ratio: ($x | ratio(.cps / $direct[.round | tostring].cps)),
        p50_us: ($x | map(.p50_us) | median),
        p99_us: ($x | map(.p99_us) | median),
        load_p50_us: ($x | map(.load_p50_us) | median),
        load_p99_us: ($x | map(.load_p99_us) | median),
        client_cpu_us: ($x | map(.client_cpu_us) | median),
        client_cpu_ratio: ($x | ratio(.client_cpu_us / $direct[.round | tostring].client_cpu_us)),
        pods_cpu_us: ($x | map(.pods_cpu_us) | median),
        per_cpu_s: ($x | map(1e6 / (.client_cpu_us + .pods_cpu_us)) | median),
        per_cpu_s_ratio: ($x | ratio(($direct[.round | tostring] | .client_cpu_us + .pods_cpu_us)
                                     / (.client_cpu_us + .pods_cpu_us))),
        connect4_ns: ($x | map(.connect4_ns) | median),
        bpf_ns_per_conn: ($x | map(.bpf_ns_per_conn) | median),
        one_share: (($x | map(.by_reply.one // 0) | add) as $one
                    | ($x | map(.by_reply | to_entries | map(.value) | add // 0) | add) as $all
                    | if $all > 0 then $one / $all else null end),
        failed: ($x | map(.failed) | add)
      })')
echo "$summary" >"$out/connect-summary.json"

table=$(jq -r '
  def f(n): if . == null then "–" else (. * pow(10; n) | round) / pow(10; n) | tostring end;
  def ratio: "\(.median | f(3))× (\(.min | f(2))–\(.max | f(2)))";
  def pct: if . == null then "–" else "\(. * 1000 | round / 10)%" end;
  "| setup | connections/s | ratio to direct | connections per CPU-second | ratio to direct | p50 µs | p99 µs | client CPU µs per connection | ratio to direct | pods CPU µs per connection | connect4 ns | BPF ns per connection | pod one | failed |",
  "|---|---:|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|",
  (.[] | "| \(.setup) | \(.cps | f(0)) | \(.cps_ratio | ratio) | \(.per_cpu_s | f(0)) | \(.per_cpu_s_ratio | ratio) | \(.p50_us) | \(.p99_us) | \(.client_cpu_us | f(1)) | \(.client_cpu_ratio | ratio) | \(.pods_cpu_us | f(1)) | \(.connect4_ns | f(0)) | \(.bpf_ns_per_conn | f(0)) | \(.one_share | pct) | \(.failed) |")
' <<<"$summary")

cat >"$out/connect.md" <<EOF
# Connect-time steering benchmark ($run, $(date -u +%Y-%m-%d))

Machine: $machine. A client pod calls two echo pods on one simulated node (network
namespaces on a bridge); the four setups were interleaved in every round.

$table

Connections/s: 4 clients in the client pod that connect, exchange one line and close
(tcpshift-loadgen). p50/p99: connect plus the echo, one client. Ratios are per-round ratios
to direct: the median, then the range over rounds. CPU is what the client's cgroup and the
pods' cgroup spent (cpu.stat usage_usec), the network stack's work done in their context
included; connections per CPU-second divide the connections by the two together, which other
work on the machine does not change as it changes connections/s. connect4 ns is the connect4 program's own run time per call, BPF ns per connection
that of connect4 and sock_ops together (kernel BPF stats). Pod one: its share of the replies.
EOF

# The README shows the latest table.
if [ "$readme" = 1 ] && grep -q '<!-- bench-connect:begin -->' "$root/README.md"; then
  readme="$root/README.md"
  {
    sed -n '1,/<!-- bench-connect:begin -->/p' "$readme"
    echo
    echo "Connect-time steering, pods on one node (\`sudo bench/connect.sh\`; $run, $(date -u +%Y-%m-%d)) on $machine:"
    echo
    echo "$table"
    echo
    echo "Ratios are per round, to direct: the median and the range. Connections per CPU-second count"
    echo "the CPU of the client's and the pods' cgroups only, so other work on the machine changes them"
    echo "less than connections/s. What each setup is: [bench/README.md](bench/README.md#connect-time-steering-pods-on-one-node)."
    echo
    sed -n '/<!-- bench-connect:end -->/,$p' "$readme"
  } >"$readme.new"
  mv "$readme.new" "$readme"
fi
