#!/usr/bin/env bash
# Benchmark (not a test): a detached container's supervisor beside Podman's
# conmon for the same `sleep`-like container, and the time of `run -d` and
# `stop`, hutch beside podman. Run as root; both run as an unprivileged
# user with a subuid range.
#
#   bench/lifecycle.sh [N]          (N rounds, default 10)
#
# Environment: BENCH_USER (default hutch-sub), HUTCH (default
# target/release/hutch), ROOTFS (default the test suite's busybox rootfs),
# PODMAN_FLAGS (default "--cgroup-manager=cgroupfs --runtime=runc": crun
# refuses this host's cgroup v1 hybrid layout).
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-10}
user=${BENCH_USER:-hutch-sub}
hutch_src=${HUTCH:-target/release/hutch}
rootfs=${ROOTFS:-/tmp/hutch-test/rootfs-$user}
podman_flags=${PODMAN_FLAGS:---cgroup-manager=cgroupfs --runtime=runc}
[ "$(id -u)" = 0 ] || { echo "lifecycle.sh: run me as root (the benchmark drops to $user)" >&2; exit 1; }
[ -x "$hutch_src" ] || { echo "lifecycle.sh: build first: cargo build --release" >&2; exit 1; }
[ -d "$rootfs" ] || { echo "lifecycle.sh: no rootfs at $rootfs (hint: cargo test --release builds it, or scripts/build-rootfs.sh DIR $user)" >&2; exit 1; }

work=$(mktemp -d /tmp/hutch-bench.XXXXXX)
chmod 755 "$work"
cp "$hutch_src" "$work/hutch"
chmod 755 "$work/hutch"
mkdir -m 700 "$work/data"
chown "$user:" "$work/data"
home=$(getent passwd "$user" | cut -d: -f6)
trap 'as_user "$work/hutch" rm -f $(as_user "$work/hutch" ps -aq) >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

as_user() {
    setpriv --reuid="$user" --regid="$user" --clear-groups \
        env -i HOME="$home" PATH=/usr/local/bin:/usr/bin:/bin HUTCH_DATA_DIR="$work/data" "$@"
}
# A workload that stops at once on SIGTERM under either tool (a bare
# `sleep` as podman's pid 1 ignores SIGTERM and would wait for the timeout).
workload=(sh -c 'trap "exit 0" TERM; while :; do sleep 0.1; done')
now() { date +%s%N; }
ms() { echo "scale=1; $1 / 1000000" | bc; }
median() { sort -n | awk '{a[NR]=$1} END {printf "%d\n", (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

declare -a h_run h_stop p_run p_stop h_rss p_rss
for i in $(seq "$n"); do
    t=$(now); id=$(as_user "$work/hutch" run -d --rootfs "$rootfs" "${workload[@]}"); h_run+=($(( $(now) - t )))
    sup=$(as_user "$work/hutch" inspect -f '{{.State.SupervisorPid}}' "$id")
    sleep 1 # settled: a few log writes and polls done
    h_rss+=("$(rss_kib "$sup")")
    t=$(now); as_user "$work/hutch" stop "$id" >/dev/null; h_stop+=($(( $(now) - t )))
    as_user "$work/hutch" rm "$id" >/dev/null

    t=$(now); pid=$(as_user podman $podman_flags run -d --network=none --rootfs "$rootfs" "${workload[@]}"); p_run+=($(( $(now) - t )))
    conmon=$(pgrep -u "$user" -n conmon)
    sleep 1
    p_rss+=("$(rss_kib "$conmon")")
    t=$(now); as_user podman $podman_flags stop "$pid" >/dev/null; p_stop+=($(( $(now) - t )))
    as_user podman $podman_flags rm "$pid" >/dev/null
done

row() { printf '%-28s %12s %12s\n' "$@"; }
row "median of $n rounds" hutch podman
row "supervisor RSS (KiB)" "$(printf '%s\n' "${h_rss[@]}" | median)" "$(printf '%s\n' "${p_rss[@]}" | median)"
row "run -d (ms)" "$(ms "$(printf '%s\n' "${h_run[@]}" | median)")" "$(ms "$(printf '%s\n' "${p_run[@]}" | median)")"
row "stop (ms)" "$(ms "$(printf '%s\n' "${h_stop[@]}" | median)")" "$(ms "$(printf '%s\n' "${p_stop[@]}" | median)")"
