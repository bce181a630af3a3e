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
    cp "${HUTCH:-$(ls "$here"/target/*/release/hutch | head -1)}" "$bin/hutch"
    chmod 755 "$bin/hutch"
    cp -r "$here/scripts" "$bin/" && chmod -R a+rX "$bin"
    cd /tmp
    exec runuser -u "$user" -- env -i HOME="$(getent passwd "$user" | cut -d: -f6)" \
        PATH=/usr/local/bin:/usr/bin:/bin HUTCH="$bin/hutch" BENCH_SCRIPTS="$bin/scripts" \
        bash "$here/bench/startup.sh" "$runs"
fi

for tool in bwrap python3; do
    command -v "$tool" >/dev/null || { echo "startup.sh: $tool is missing (hint: apt-get install ${tool/bwrap/bubblewrap})" >&2; exit 1; }
done
hutch=${HUTCH:-$(ls "$here"/target/*/release/hutch | head -1)}
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

# Interleaved rounds (each round runs every command once, in a shuffled
# order) so that load from elsewhere on the machine hits all alike.
# Podman takes ~50x as long per run: it runs in one round out of ten.
python3 - "$runs" "${cmds[@]}" <<'PY'
import random, shlex, statistics, subprocess, sys, time
runs = int(sys.argv[1])
cmds = [c.split("|", 1) for c in sys.argv[2:]]
times = {name: [] for name, _ in cmds}
for _ in range(5):  # warm-up
    for name, cmd in cmds:
        subprocess.run(shlex.split(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for i in range(runs):
    order = cmds[:]
    random.shuffle(order)
    for name, cmd in order:
        if name == "podman" and i % 10:
            continue
        t0 = time.perf_counter()
        r = subprocess.run(shlex.split(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times[name].append(time.perf_counter() - t0)
        if r.returncode != 0:
            sys.exit(f"startup.sh: {name} failed ({r.returncode}): {cmd}")
res = {name: statistics.median(t) * 1000 for name, t in times.items()}
base = res["hutch"]
print(f"{'command':<28}{'runs':>6}{'median':>11}  vs hutch")
for name, ms in res.items():
    print(f"{name:<28}{len(times[name]):>6}{ms:>9.2f}ms  {ms / base:6.2f}x")
if "bwrap" in res:
    print(f"hutch / bwrap = {base / res['bwrap']:.2f} (target <= 1.5)")
if "podman" in res:
    print(f"podman / hutch = {res['podman'] / base:.1f} (target >= 20)")
PY
