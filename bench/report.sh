#!/usr/bin/env bash
# Turns bench/results/latest.jsonl and scale.jsonl into latest.md and latest.png, and
# rewrites the README's benchmark section from them.
#   bench/report.sh RESULTS_DIR QUICK(0|1) ROUNDS [README(1|0)]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$1
quick=$2
rounds=$3
update_readme=${4:-1}
samples="$out/latest.jsonl"
scale_file="$out/scale.jsonl"

cpu_model=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
machine="$(nproc) CPUs ($cpu_model), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r)"
mode=$([ "$quick" = 1 ] && echo "--quick" || echo "full")

# Per configuration: the median over rounds, and for ratios the median and range of the
# per-round ratio to bare, the host without tcpshift (rounds are interleaved, so each ratio
# pairs close runs).
summary=$(jq -n --slurpfile samples "$samples" '
    def median: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
    ($samples | map(select(.config == "bare")) | map({key: (.round | tostring), value: .}) | from_entries) as $bare
    | ["bare", "attached", "unrelated", "tcpshift", "nftables", "haproxy"]
    | map(. as $c | [$samples[] | select(.config == $c)] as $s | {
        config: $c,
        cps: ($s | map(.cps) | median),
        cps_ratio: ($s | map(.cps / $bare[.round | tostring].cps) | {median: median, min: min, max: max}),
        cpu_ratio: ($s | map(select(.cpu_per_conn != null and $bare[.round | tostring].cpu_per_conn != null))
                    | map(.cpu_per_conn / $bare[.round | tostring].cpu_per_conn) | {median: median, min: min, max: max}),
        gbps: ($s | map(.gbps) | median),
        gbps_ratio: ($s | map(.gbps / $bare[.round | tostring].gbps) | {median: median, min: min, max: max}),
        p50_us: ($s | map(.p50_us) | median),
        p99_us: ($s | map(.p99_us) | median),
        cpu_per_conn: ($s | map(.cpu_per_conn) | map(select(. != null)) | median),
        cpu_unit: ($s[0].cpu_unit),
        lookup_ns: ($s | map(.lookup_ns) | map(select(. != null)) | median),
        failed: ($s | map(.crr_failed + .lat_failed) | add),
        bulk_errors: ($s | map(select(.bulk_error != null)) | length),
        v1_share: (if $c == "bare" or $c == "attached" or $c == "unrelated" then null else
                   ($s | map(.by_reply.v1 // 0) | add) as $v1
                   | ($s | map(.by_reply | to_entries | map(.value) | add) | add) as $all
                   | if $all > 0 then $v1 / $all else null end end)
      })')
echo "$summary" >"$out/summary.json"

table=$(jq -r '
  def f(n): if . == null then "–" else (. * pow(10; n) | round) / pow(10; n) | tostring end;
  def ratio: "\(.median | f(3))× (\(.min | f(2))–\(.max | f(2)))";
  def pct: if . == null then "–" else "\(. * 1000 | round / 10)%" end;
  "| configuration | connections/s | ratio to bare | \(.[0].cpu_unit // "CPU") per connection | ratio to bare | Gbit/s | ratio to bare | p50 µs | p99 µs | sk_lookup ns | v1 share | failed |",
  "|---|---:|---|---:|---|---:|---|---:|---:|---:|---:|---:|",
  (.[] | "| \(.config) | \(.cps | f(0)) | \(.cps_ratio | ratio) | \(.cpu_per_conn | f(1)) | \(.cpu_ratio | ratio) | \(.gbps | f(1)) | \(.gbps_ratio | ratio) | \(.p50_us) | \(.p99_us) | \(.lookup_ns | f(0)) | \(.v1_share | pct) | \(.failed) |")
' <<<"$summary")

targets=$(jq -r '
  (map({key: .config, value: .}) | from_entries) as $c
  | def met(x): if x then "met" else "**not met**" end;
    def r(x): "\(x.median * 1000 | round / 1000)× (\(x.min * 100 | round / 100)–\(x.max * 100 | round / 100))";
  "- steered connections/s at or above 0.97× bare: \(r($c.tcpshift.cps_ratio)) — \(met($c.tcpshift.cps_ratio.median >= 0.97))",
  "- straight to a backend while attached at or above 0.99× bare: \(r($c.attached.cps_ratio)) — \(met($c.attached.cps_ratio.median >= 0.99))",
  "- a port tcpshift has nothing to do with at or above 0.99× bare: \(r($c.unrelated.cps_ratio)) — \(met($c.unrelated.cps_ratio.median >= 0.99))",
  "- steered at or above nftables: \($c.tcpshift.cps | round) vs \($c.nftables.cps | round) connections/s — \(met($c.tcpshift.cps >= $c.nftables.cps))",
  "- steered throughput at least 0.99× bare: \(r($c.tcpshift.gbps_ratio)) — \(met($c.tcpshift.gbps_ratio.median >= 0.99))"
' <<<"$summary")

scale_table=""
if [ -s "$scale_file" ]; then
  scale_table=$(jq -rs '
    "| config size | apply ms | set ms | status ms | sk_lookup ns | map memory | per service it holds | connections/s | failed |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    (.[] | (.max_services // (if .kind == "services" and .n > 256 then .n else 256 end)) as $cap
     | "| \(.n) \(.kind) | \(.apply_ms) | \(.set_ms // "–") | \(.status_ms // "–") | \(.lookup_ns) | \(.map_bytes / 1048576 * 10 | round / 10) MiB | \(.map_bytes / $cap / 1024 * 10 | round / 10) KiB (\($cap)) | \(.cps | round) | \(.failed) |")
  ' "$scale_file")
fi

lookup_table=""
if [ -s "$out/lookup.json" ]; then
  lookup_table=$(jq -r '
    "| lookup (BPF_PROG_TEST_RUN) | ns |",
    "|---|---:|",
    (.benchmarks[] | "| \(.name | sub("/iterations:[0-9]+/manual_time"; "") | sub("^BM_"; "")) | \(.real_time | round) |")
  ' "$out/lookup.json")
fi

cat >"$out/latest.md" <<EOF
# tcpshift benchmark ($mode, $rounds rounds, $(date -u +%Y-%m-%d))

Machine: $machine. Everything ran in one network namespace over loopback, against the same
tcp-echo and iperf3 backends; the configurations were interleaved in every round. bare is
the host without tcpshift; attached and unrelated connect straight to a backend's port and to
a port tcpshift has nothing to do with, while tcpshift is attached; tcpshift is steered through
a frontend at 20/80.

$table

Connections/s: 4 clients that connect, exchange one line and close (tcpshift-loadgen).
Gbit/s: one iperf3 stream. p50/p99: connect plus the first round trip, one client.
Ratios are per-round ratios to bare: the median, then the range over rounds. CPU per
connection is what the whole machine spent (/proc/stat: every CPU's time but idle and iowait)
divided by the connections; the load generator and the echo servers take the same in every
configuration, so the differences are what each configuration adds.
sk_lookup ns is the program's own run time per lookup (kernel BPF stats); attached and
unrelated run it for every connection and find no frontend.

Targets:
$targets
$(others=$(cat "$out/foreign-hooks" 2>/dev/null || echo 0)
  [ "$others" -gt 0 ] && echo && echo "Caution: $others tcpshift program(s) of other network namespaces were attached to cgroups during the run; they ran for every configuration, bare included.")

## Scale

$scale_table

sk_lookup ns is measured on the service added last, with real connections and the kernel's
BPF stats on; memory is the pinned maps' memlock, whole and divided by the services the maps
were sized for (\`attach --max-services\`, at least 256). set ms shifts one service's weights and
status ms reports all of them, each a whole \`tcpshift\` command. The program alone, timed by the kernel
over 2,000 runs per sample (\`tcpshift-lookup-bench\`): OtherPort is a connection to a port no
frontend uses, Steered a steered one, Fallback one that finds its backend gone half of the
time; SteeredServices/N and SteeredBackends/N grow the configuration.

$lookup_table
EOF

# Chart: connections/s and throughput as ratios to bare, with the range over rounds.
jq -r '.[] | "\(.config) \(.cps_ratio.median) \(.cps_ratio.min) \(.cps_ratio.max) \(.gbps_ratio.median) \(.gbps_ratio.min) \(.gbps_ratio.max)"' \
  <<<"$summary" >"$out/ratios.dat"
gnuplot <<EOF
set terminal pngcairo size 900,480 font ",11"
set output "$out/latest.png"
set title "Ratio to the host without tcpshift ($mode, $rounds rounds; bars: median, whiskers: range)"
set style data histograms
set style histogram errorbars gap 2 lw 1
set style fill solid 0.8 border -1
set yrange [0:*]
set grid ytics
set key top right
set xtics nomirror
plot "$out/ratios.dat" using 2:3:4:xtic(1) title "connections/s", \
     "" using 5:6:7 title "throughput"
EOF

# The README shows the latest table and chart.
readme="$root/README.md"
if [ "$update_readme" = 1 ] && grep -q '<!-- bench:begin -->' "$readme"; then
  {
    sed -n '1,/<!-- bench:begin -->/p' "$readme"
    echo
    echo "Latest run ($mode, $rounds rounds) on $machine:"
    echo
    echo "$table"
    echo
    echo "$targets"
    echo
    echo "![ratios to the host without tcpshift](bench/results/latest.png)"
    echo
    if [ -n "$scale_table" ]; then
      echo "Scale: \`apply\` of N services, \`set\` of one of them and \`status\` of all, each a whole"
      echo "command; the sk_lookup cost under real connections; the pinned maps' memory:"
      echo
      echo "$scale_table"
      echo
    fi
    sed -n '/<!-- bench:end -->/,$p' "$readme"
  } >"$readme.new"
  mv "$readme.new" "$readme"
fi
