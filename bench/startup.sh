#!/usr/bin/env bash
# Start-up time of `hutch run --rm --rootfs R true` beside bwrap and Podman,
# same busybox rootfs, same namespaces (user, mount, pid, ipc, uts, net,
# cgroup), run as an unprivileged user. Prints medians and ratios.
#
#   bench/startup.sh [RUNS]            as the user to measure
#   sudo bench/startup.sh [RUNS]       as root: runs itself as hutch-sub
#
# bwrap (0.8 on Debian 12) has no overlay option, so it gets the rootfs as a
# read-only bind; hutch pays for an overlay with a private upper dir on top.
# Podman gets an image imported from the same rootfs and --network=none.
# `hutch --policy unconfined` (no seccomp, no Landlock, as bwrap by default)
# shows the engine's own share; `--userns=single` the newuidmap helpers'.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-200}

if [ "$(id -u)" = 0 ]; then
    user=${BENCH_USER:-hutch-sub}
    bin=/tmp/hutch-bench-bin
    mkdir -p "$bin" && chmod 755 "$bin"
    cp "${HUTCH:-$here/target/release/hutch}" "$bin/hutch"
    chmod 755 "$bin/hutch"
    cp -r "$here/scripts" "$bin/" && chmod -R a+rX "$bin"
    cd /tmp
    exec runuser -u "$user" -- env -i HOME="$(getent passwd "$user" | cut -d: -f6)" \
        PATH=/usr/local/bin:/usr/bin:/bin HUTCH="$bin/hutch" BENCH_SCRIPTS="$bin/scripts" \
        bash "$here/bench/startup.sh" "$runs"
fi

for tool in hyperfine bwrap python3; do
    command -v "$tool" >/dev/null || { echo "startup.sh: $tool is missing (hint: apt-get install ${tool/bwrap/bubblewrap})" >&2; exit 1; }
done
hutch=${HUTCH:-$here/target/release/hutch}
scripts=${BENCH_SCRIPTS:-$here/scripts}
work=$(mktemp -d /tmp/hutch-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
bash "$scripts/build-rootfs.sh" "$work/rootfs" >/dev/null
rootfs=$work/rootfs

cmds=(
    "hutch|$hutch run --rm --rootfs $rootfs true"
    "hutch --userns=single|$hutch run --rm --userns=single --rootfs $rootfs true"
    "hutch --policy unconfined|$hutch run --rm --policy unconfined --rootfs $rootfs true"
    "bwrap|bwrap --unshare-all --unshare-user --uid 0 --gid 0 --new-session --die-with-parent --ro-bind $rootfs / --proc /proc --dev /dev --tmpfs /tmp true"
)
if command -v podman >/dev/null; then
    image=localhost/hutch-bench-busybox
    tar -C "$rootfs" -c . | podman import -q - "$image" >/dev/null
    # crun refuses a cgroup v1 hybrid host whose cgroup2 holds a controller
    # (this machine's hugetlb); runc does not.
    runtime=()
    if ! podman run --rm --network=none "$image" true 2>/dev/null; then
        runtime=(--runtime=runc)
        podman run --rm --network=none "${runtime[@]}" "$image" true
        echo "podman: crun failed here, using runc"
    fi
    cmds+=("podman|podman run --rm --network=none ${runtime[*]} $image true")
fi

names=()
args=()
for c in "${cmds[@]}"; do
    names+=("${c%%|*}")
    args+=(--command-name "${c%%|*}" "${c#*|}")
done
# Podman takes ~100x as long per run: cap its runs so the bench stays short.
hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/fast.json" \
    "${args[@]:0:$((${#args[@]} - 3))}" >/dev/null
if command -v podman >/dev/null; then
    hyperfine -N --warmup 2 --runs 20 --export-json "$work/podman.json" \
        "${args[@]: -3}" >/dev/null
fi

python3 - "$work"/*.json <<'PY'
import json, statistics, sys
res = {}
for f in sys.argv[1:]:
    for r in json.load(open(f))["results"]:
        res[r["command"]] = statistics.median(r["times"]) * 1000
base = res["hutch"]
print(f"{'command':<24}{'median':>10}  vs hutch")
for name, ms in res.items():
    print(f"{name:<24}{ms:>8.2f}ms  {ms / base:6.2f}x")
b = res.get("bwrap")
p = res.get("podman")
if b:
    print(f"hutch / bwrap = {base / b:.2f} (target <= 1.5)")
if p:
    print(f"podman / hutch = {p / base:.1f} (target >= 20)")
PY
