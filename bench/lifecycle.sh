#!/usr/bin/env bash
# Benchmark (not a test): a detached container's supervisor beside Podman's
# conmon for the same `sleep`-like container, and the time of `run -d` and
# `stop`, hutch beside podman. Run as root; both run as an unprivileged
# user with a subuid range. A third column is hutch's supervisor when it
# also runs the watchdog (CPU time and memory limits with no delegated
# cgroup: a user without one, `--time-limit 100 -m 64m`), which walks /proc
# every 20 ms; podman has no such mode.
#
# Resident size is Rss from /proc/PID/smaps_rollup (shared text counted in
# full), read after the container has run SETTLE seconds.
#
#   bench/lifecycle.sh [N]          (N rounds, default 10)
#
# Environment: BENCH_USER (default hutch-sub), WATCH_USER (default
# hutch-nosub), HUTCH (default target/<host>/release/hutch), ROOTFS (default the
# test suite's busybox rootfs), SETTLE (default 3), PODMAN_FLAGS (default
# "--cgroup-manager=cgroupfs --runtime=runc": crun refuses this host's
# cgroup v1 hybrid layout).
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-10}
user=${BENCH_USER:-hutch-sub}
watch_user=${WATCH_USER:-hutch-nosub}
settle=${SETTLE:-3}
hutch_src=${HUTCH:-$(ls target/*/release/hutch 2>/dev/null | head -1)}
rootfs=${ROOTFS:-/tmp/hutch-test/rootfs-$user}
watch_rootfs=/tmp/hutch-test/rootfs-$watch_user
podman_flags=${PODMAN_FLAGS:---cgroup-manager=cgroupfs --runtime=runc}
[ "$(id -u)" = 0 ] || { echo "lifecycle.sh: run me as root (the benchmark drops to $user)" >&2; exit 1; }
[ -x "$hutch_src" ] || { echo "lifecycle.sh: build first: cargo build --release" >&2; exit 1; }
[ -d "$rootfs" ] || { echo "lifecycle.sh: no rootfs at $rootfs (hint: cargo test --release builds it, or scripts/build-rootfs.sh DIR $user)" >&2; exit 1; }

work=$(mktemp -d /tmp/hutch-bench.XXXXXX)
chmod 755 "$work"
cp "$hutch_src" "$work/hutch"
chmod 755 "$work/hutch"
mkdir -m 700 "$work/data" "$work/watch-data"
chown "$user:" "$work/data"
chown "$watch_user:" "$work/watch-data"
home=$(getent passwd "$user" | cut -d: -f6)
trap 'as_user "$work/hutch" rm -f $(as_user "$work/hutch" ps -aq) >/dev/null 2>&1 || true
      as_watcher "$work/hutch" rm -f $(as_watcher "$work/hutch" ps -aq) >/dev/null 2>&1 || true
      rm -rf "$work"' EXIT

as_user() {
    setpriv --reuid="$user" --regid="$user" --clear-groups \
        env -i HOME="$home" PATH=/usr/local/bin:/usr/bin:/bin HUTCH_DATA_DIR="$work/data" "$@"
}
as_watcher() {
    setpriv --reuid="$watch_user" --regid="$watch_user" --clear-groups \
        env -i HOME=/tmp PATH=/usr/local/bin:/usr/bin:/bin HUTCH_DATA_DIR="$work/watch-data" "$@"
}
# A workload that stops at once on SIGTERM under either tool (a bare
# `sleep` as podman's pid 1 ignores SIGTERM and would wait for the timeout).
workload=(sh -c 'trap "exit 0" TERM; while :; do sleep 0.1; done')
now() { date +%s%N; }
ms() { echo "scale=1; $1 / 1000000" | bc; }
median() { sort -n | awk '{a[NR]=$1} END {printf "%d\n", (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
rss_kib() { awk '/^Rss:/ {print $2}' "/proc/$1/smaps_rollup"; }

declare -a h_run h_stop p_run p_stop h_rss p_rss w_rss w_run w_stop
for i in $(seq "$n"); do
    t=$(now); id=$(as_user "$work/hutch" run -d --rootfs "$rootfs" "${workload[@]}"); h_run+=($(( $(now) - t )))
    sup=$(as_user "$work/hutch" inspect -f '{{.State.SupervisorPid}}' "$id")
    sleep "$settle" # settled: log writes, polls and the first sheds done
    h_rss+=("$(rss_kib "$sup")")
    t=$(now); as_user "$work/hutch" stop "$id" >/dev/null; h_stop+=($(( $(now) - t )))
    as_user "$work/hutch" rm "$id" >/dev/null

    t=$(now); pid=$(as_user podman $podman_flags run -d --network=none --rootfs "$rootfs" "${workload[@]}"); p_run+=($(( $(now) - t )))
    conmon=$(pgrep -u "$user" -n conmon)
    sleep "$settle"
    p_rss+=("$(rss_kib "$conmon")")
    t=$(now); as_user podman $podman_flags stop "$pid" >/dev/null; p_stop+=($(( $(now) - t )))
    as_user podman $podman_flags rm "$pid" >/dev/null

    if [ -d "$watch_rootfs" ]; then
        t=$(now); id=$(as_watcher "$work/hutch" run -d --time-limit 100 -m 64m --rootfs "$watch_rootfs" "${workload[@]}"); w_run+=($(( $(now) - t )))
        sup=$(as_watcher "$work/hutch" inspect -f '{{.State.SupervisorPid}}' "$id")
        sleep "$settle" # ~150 watchdog ticks
        w_rss+=("$(rss_kib "$sup")")
        t=$(now); as_watcher "$work/hutch" stop "$id" >/dev/null; w_stop+=($(( $(now) - t )))
        as_watcher "$work/hutch" rm "$id" >/dev/null
    fi
done

med() { if [ "$#" -gt 0 ]; then printf '%s\n' "$@" | median; else echo -; fi; }
med_ms() { if [ "$#" -gt 0 ]; then ms "$(med "$@")"; else echo -; fi; }
row() { printf '%-28s %12s %12s %18s\n' "$@"; }
row "median of $n rounds" hutch podman "hutch, watchdog"
row "supervisor RSS (KiB)" "$(med "${h_rss[@]}")" "$(med "${p_rss[@]}")" "$(med "${w_rss[@]}")"
row "run -d (ms)" "$(med_ms "${h_run[@]}")" "$(med_ms "${p_run[@]}")" "$(med_ms "${w_run[@]}")"
row "stop (ms)" "$(med_ms "${h_stop[@]}")" "$(med_ms "${p_stop[@]}")" "$(med_ms "${w_stop[@]}")"
