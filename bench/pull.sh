#!/usr/bin/env bash
# Benchmark (not a test): a cold pull-and-unpack of a ~100 MB multi-layer
# image from the local registry, by hutch, `podman pull` and `skopeo copy`
# to a directory, each as the unprivileged user hutch-sub with a cold store
# every time. Prints each run, the medians and the ratios.
#
#   sudo bench/pull.sh [RUNS]        (default 5; needs scripts/setup-host.sh, podman, bc
#                                     and a release build: cargo build --release)
#
# The image: a busybox base plus four layers of the host's files
# (/usr/lib/python3, /usr/share/perl, /usr/share/i18n, /usr/libexec), gzip,
# pushed to 127.0.0.1:5790/hutch/bench.
set -euo pipefail

runs=${1:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
registry=127.0.0.1:5790
ref=$registry/hutch/bench:latest
user=hutch-sub
hutch_bin=${HUTCH_BIN:-$(ls "${CARGO_TARGET_DIR:-$root/target}"/*/release/hutch 2>/dev/null | head -1)}
[ -x "$hutch_bin" ] || { echo "pull.sh: build hutch first (cargo build --release), or set HUTCH_BIN" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "pull.sh: run as root (it drops to $user)" >&2; exit 1; }

bash "$root/scripts/start-registry.sh" >/dev/null
bench=/tmp/hutch-bench
mkdir -p "$bench"
chmod 755 "$bench"
install -m 755 "$hutch_bin" "$bench/hutch"
install -d -m 700 -o "$user" "$bench/run-$user"

# Build and push the image once.
if ! skopeo inspect --tls-verify=false "docker://$ref" >/dev/null 2>&1; then
    work=$(mktemp -d /tmp/hutch-bench-build.XXXXXX)
    trap 'rm -rf "$work"' EXIT
    # shellcheck source=scripts/oci-layout.sh
    source "$root/scripts/oci-layout.sh"
    bash "$root/scripts/build-rootfs.sh" "$work/base" >/dev/null
    tar_dir "$work/base" "$work/l0.tar"
    specs="$work/l0.tar:gzip"
    i=1
    for d in /usr/lib/python3 /usr/share/perl /usr/share/i18n /usr/libexec; do
        mkdir -p "$work/l$i$(dirname "$d")"
        cp -a "$d" "$work/l$i$(dirname "$d")/"
        tar_dir "$work/l$i" "$work/l$i.tar"
        rm -rf "$work/l$i"
        specs="$specs $work/l$i.tar:gzip"
        i=$((i + 1))
    done
    layout_init "$work/oci"
    read -r d s < <(image "$work/oci" "$(dpkg --print-architecture)" '"Cmd":["sh"]' "$specs")
    index_single "$work/oci" latest "$d" "$s"
    skopeo copy -q --dest-tls-verify=false "oci:$work/oci:latest" "docker://$ref" >/dev/null
fi

as_user() {
    su "$user" -s /bin/bash -c "cd /tmp && export XDG_RUNTIME_DIR=$bench/run-$user HOME=$(getent passwd $user | cut -d: -f6); $1"
}

# time_it CMD -> "WALL CPU" in seconds (as the user; CPU is user + system
# time of every process it waited for, which a loaded machine inflates less)
time_it() {
    /usr/bin/time -f "%e %U %S" -o "$bench/last.time" \
        su "$user" -s /bin/bash -c "cd /tmp && export XDG_RUNTIME_DIR=$bench/run-$user HOME=$(getent passwd $user | cut -d: -f6); $1" \
        >/dev/null 2>"$bench/last.err" || { echo "pull.sh: failed: $1" >&2; cat "$bench/last.err" >&2; exit 1; }
    awk '{printf "%s %.2f\n", $1, $2 + $3}' "$bench/last.time"
}

# A fresh, empty store directory for every run: on a tmpfs (default) or on
# the disk with BENCH_FS=disk. The stores are deleted only at the end, not
# between runs: on ext4 without a journal (this machine's root file system)
# the inode allocator skips inodes freed within the last 60 s (360 s while
# their inode table block is dirty), rescanning them from the start of the
# block group for every new inode (ext4's recently_deleted()), so a run
# right after deleting the previous run's ~30,000 files spends most of its
# CPU time in the kernel, and measures the deletion rather than the tool.
# BENCH_REUSE=1 reproduces that: one store directory, emptied before every
# run (BENCH_PAUSE=SECONDS waits after emptying it).
fs=${BENCH_FS:-tmpfs}
reuse=${BENCH_REUSE:-0}
pause=${BENCH_PAUSE:-0}
# Rootless podman keeps a pause process holding its mount namespace; one
# left from before the tmpfs was mounted would not see it.
pausefile=$bench/run-$user/libpod/tmp/pause.pid
[ -s "$pausefile" ] && kill "$(cat "$pausefile")" 2>/dev/null || true
mountpoint -q "$bench/store" && umount "$bench/store"
rm -rf "$bench/store"
mkdir -p "$bench/store"
[ "$fs" = tmpfs ] && mount -t tmpfs -o size=8g,mode=755 tmpfs "$bench/store"
chown "$user:" "$bench/store"
# fresh TOOL RUN -> an empty directory for the run's store
fresh() {
    local dir=$bench/store/$1-$2
    if [ "$reuse" = 1 ]; then
        dir=$bench/store/reused
        # As root: the stores hold files of subordinate ids.
        rm -rf "$dir"
        sync
        sleep "$pause"
    fi
    install -d -o "$user" "$dir"
    sync
    echo "$dir"
}
clean() {
    find "$bench/store" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

declare -A results cpus
tools=(hutch skopeo)
command -v podman >/dev/null && tools+=(podman)
# Round robin, so load from elsewhere hits every tool alike; `sync` before
# each run (in fresh), so no run writes back the previous one's data (hutch
# syncs the file system before publishing each layer; podman does not).
for n in $(seq 1 "$runs"); do
    for tool in "${tools[@]}"; do
        dir=$(fresh "$tool" "$n")
        case $tool in
            hutch) cmd="HUTCH_DATA_DIR=$dir/hutch $bench/hutch pull -q $ref" ;;
            skopeo) cmd="skopeo copy -q --src-tls-verify=false docker://$ref dir:$dir/dir" ;;
            podman) cmd="podman --root $dir/podman --runroot $dir/run --storage-driver overlay pull -q --tls-verify=false $ref" ;;
        esac
        read -r t c < <(time_it "$cmd")
        results[$tool]+="$t "
        cpus[$tool]+="$c "
        printf '%-7s run %d: %6.2fs wall %6.2fs cpu\n' "$tool" "$n" "$t" "$c"
    done
done
clean
[ -s "$pausefile" ] && kill "$(cat "$pausefile")" 2>/dev/null || true
mountpoint -q "$bench/store" && umount "$bench/store"

echo
install -d -o "$user" "$bench/size"
size=$(as_user "HUTCH_DATA_DIR=$bench/size $bench/hutch pull -q $ref >/dev/null && HUTCH_DATA_DIR=$bench/size $bench/hutch images" | awk 'NR==2 {print $NF}')
rm -rf "$bench/size"
mode=$([ "$reuse" = 1 ] && echo "one store emptied before each run, pause ${pause}s" || echo "a fresh store dir each run")
echo "image $ref: $size unpacked, 5 layers; $runs cold runs each, store on $fs ($mode); load average $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A med medc
for tool in "${tools[@]}"; do
    med[$tool]=$(echo "${results[$tool]}" | tr ' ' '\n' | grep . | median)
    medc[$tool]=$(echo "${cpus[$tool]}" | tr ' ' '\n' | grep . | median)
    printf 'median %-7s %6.2fs wall %6.2fs cpu\n' "$tool" "${med[$tool]}" "${medc[$tool]}"
done
for tool in "${tools[@]}"; do
    [ "$tool" = hutch ] && continue
    printf '%-7s / hutch: %.2fx wall, %.2fx cpu\n' "$tool" \
        "$(echo "${med[$tool]} / ${med[hutch]}" | bc -l)" "$(echo "${medc[$tool]} / ${medc[hutch]}" | bc -l)"
done
