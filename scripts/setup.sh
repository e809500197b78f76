#!/usr/bin/env bash
# Installs what tcpshift needs to build, test and run the demo, from Debian 12 packages.
# Idempotent: packages already installed are left alone, and apt is not touched when
# nothing is missing.
set -euo pipefail

packages=(
  # build
  cmake ninja-build g++ pkg-config
  # BPF: clang for -target bpf, bpftool for skeletons, libbpf, UAPI headers
  clang llvm bpftool libbpf-dev linux-libc-dev
  # libFuzzer: Debian 12's clang 16 is the first to compile libstdc++'s std::expected
  clang-16 libclang-rt-16-dev llvm-16
  # libraries
  libcli11-dev libyaml-cpp-dev libgtest-dev libgmock-dev nlohmann-json3-dev libcpp-httplib-dev
  libbenchmark-dev
  # network tools for the tests and the demo; setpriv (util-linux) runs the agent with only
  # the systemd unit's capabilities and a backend as another user
  iproute2 nftables netcat-openbsd procps util-linux
  # a real Prometheus server scrapes the agent in the e2e tests
  prometheus
  # `rollout --plot FILE.png` renders its SVG with rsvg-convert
  librsvg2-bin
)

# bench/run.sh adds the baselines it compares against, and its plotting and profiling tools;
# tests/vm/run.sh adds qemu and what it builds a guest's initramfs from.
for extra in "$@"; do
  case "$extra" in
    --bench) packages+=(haproxy iperf3 gnuplot-nox jq linux-perf) ;;
    --vm) packages+=(qemu-system-x86 busybox-static cpio) ;;
    *) echo "setup: unknown argument $extra (known: --bench, --vm)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing packages: ${missing[*]}; run as root (sudo) to install them" >&2
  exit 1
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
