#!/usr/bin/env bash
# Judge throughput: sandboxed runs per second of a tiny static program,
# sequentially and on two workers, hutch beside bwrap and hakoniwa (when
# installed), all in one run so the ratios hold on a noisy machine; then
# the median wall time of single runs interleaved run by run.
#
#   bench/judge.sh [RUNS]          as an unprivileged user (or as root: it
#                                  then drops to hutch-sub, made by
#                                  scripts/setup-host.sh)
#
# hakoniwa, if wanted, from crates.io into /opt/hakoniwa (it links
# libseccomp): apt-get install libseccomp-dev &&
# cargo install hakoniwa-cli --root /opt/hakoniwa
#
# BENCH_DIR (default /tmp/hutch-bench) holds the fixture: hutch, a busybox
# rootfs with the static program, the extracted seccomp filters.
#
# What each line does (the ratios are against hutch-judge):
#   hutch-judge    --read-only --tmpfs /tmp --policy judge (seccomp
#                  allowlist, no new processes, no sockets but AF_UNIX,
#                  Landlock: / read-only, writes to /tmp only), a cgroup with
#                  time, memory and process limits, a read-only bind of the
#                  rootfs as root (as bwrap's) and a tmpfs /tmp, all
#                  namespaces, /proc with masked paths, /dev, /sys
#   hutch-baseline the judge run with $HUTCH_BASELINE (another build), if set
#   hutch          the same limits with the default policy, --userns auto
#                  and a writable root (an overlay on the rootfs)
#   bwrap          --unshare-all, read-only bind of the rootfs, /proc, /dev:
#                  no seccomp, no Landlock, no limits
#   bwrap+seccomp  the same plus hutch's compiled judge seccomp filters
#   hakoniwa       its defaults (seccomp podman profile, no network ns)
#   hakoniwa+      --unshare-all plus rlimits for CPU time and address space
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-200}
fix=${BENCH_DIR:-/tmp/hutch-bench}
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$fix"
    cargo build --release -q
    install -m 0755 "$(ls "${CARGO_TARGET_DIR:-target}"/*/release/hutch | head -1)" "$fix/hutch"
    [ -f "$fix/rootfs/etc/hosts" ] || scripts/build-rootfs.sh "$fix/rootfs" hutch-sub >/dev/null
    gcc -static -O2 -o "$fix/rootfs/usr/bin/hello" tests/programs/hello.c
    chmod -R a+rX "$fix"
    rm -rf "$fix/baseline-data"
    install -d -o hutch-sub -m 0700 "$fix/baseline-data"
    exec runuser -u hutch-sub -- env BENCH_DIR="$fix" HUTCH_BASELINE="${HUTCH_BASELINE:-}" \
        PATH="/opt/hakoniwa/bin:$PATH" bash "$0" "$runs"
fi
hutch=${HUTCH:-$fix/hutch}
root=$fix/rootfs

# hutch's judge filters as raw sock_filter arrays for bwrap: the seccomp
# cache file is "HUTCHBPF", a u32 format, a u32 count, then per program a
# u32 length and that many 8-byte instructions (struct sock_filter).
bpf_dir=$(mktemp -d)
trap 'rm -rf "$bpf_dir"' EXIT
cache=$("$hutch" policy check judge | sed -n 's/.*cache: \(hit\|compiled, stored as\) \(\/.*\.bpf\)$/\2/p')
seccomp_fds=""
if [ -n "$cache" ] && [ -f "$cache" ]; then
    u32() { od -An -t u4 -j "$1" -N 4 "$cache" | tr -d ' '; }
    n=$(u32 12)
    off=16
    for i in $(seq 0 $((n - 1))); do
        len=$(u32 "$off")
        dd if="$cache" of="$bpf_dir/$i" bs=1 skip=$((off + 4)) count=$((len * 8)) status=none
        off=$((off + 4 + len * 8))
        # sh (dash) redirects single-digit descriptors only.
        [ $((3 + i)) -le 9 ] || { seccomp_fds=""; break; }
        seccomp_fds="$seccomp_fds --add-seccomp-fd $((3 + i)) $((3 + i))<$bpf_dir/$i"
    done
fi

declare -A cmd
limits="--time-limit 2 -m 256m --pids-limit 64"
judge="--read-only --tmpfs /tmp --policy judge $limits"
cmd[hutch-judge]="$hutch run --rm --rootfs $root $judge /usr/bin/hello"
cmd[hutch]="$hutch run --rm --rootfs $root $limits /usr/bin/hello"
# HUTCH_BASELINE=/path/to/an/older/hutch adds it, doing the judge run.
if [ -n "${HUTCH_BASELINE:-}" ]; then
    # A store of its own: another build may keep its records otherwise.
    cmd[hutch-baseline]="HUTCH_DATA_DIR=$fix/baseline-data $HUTCH_BASELINE run --rm --rootfs $root $judge /usr/bin/hello"
fi
bwrap="bwrap --unshare-all --die-with-parent --ro-bind $root / --proc /proc --dev /dev"
cmd[bwrap]="$bwrap /usr/bin/hello"
if [ -n "$seccomp_fds" ]; then
    cmd[bwrap+seccomp]="$bwrap $seccomp_fds /usr/bin/hello"
fi
if command -v hakoniwa >/dev/null; then
    cmd[hakoniwa]="hakoniwa run --rootdir $root -- /usr/bin/hello"
    cmd[hakoniwa+]="hakoniwa run --unshare-all --rootdir $root --limit-cpu 2 --limit-as 268435456 -- /usr/bin/hello"
fi

# Check each works before timing it.
for name in "${!cmd[@]}"; do
    out=$(sh -c "${cmd[$name]}" 2>&1) || { echo "$name failed: $out" >&2; unset "cmd[$name]"; continue; }
    [ "$out" = hello ] || { echo "$name printed: $out" >&2; unset "cmd[$name]"; }
done

# Rounds interleave the sandboxes in a shuffled order, so that load from
# elsewhere on the machine hits them all alike.
rounds=10
chunk=$(( (runs + rounds - 1) / rounds ))
declare -A ns1 ns2 fail
timed() { # name workers -> "nanoseconds failed-runs" for one chunk
    local c=${cmd[$1]} start end failed
    start=$(date +%s%N)
    failed=$(seq "$chunk" | xargs -P "$2" -I{} sh -c "$c >/dev/null 2>&1 || echo x" | wc -l)
    end=$(date +%s%N)
    echo "$((end - start)) $failed"
}
order=(hutch-judge hutch-baseline hutch bwrap bwrap+seccomp hakoniwa hakoniwa+)
for _ in $(seq "$rounds"); do
    for name in $(printf '%s\n' "${!cmd[@]}" | shuf); do
        for w in 1 2; do
            read -r t f < <(timed "$name" "$w")
            if [ "$w" = 1 ]; then ns1[$name]=$(( ${ns1[$name]:-0} + t )); else ns2[$name]=$(( ${ns2[$name]:-0} + t )); fi
            fail[$name]=$(( ${fail[$name]:-0} + f ))
        done
    done
done
# Interleaved single runs: every round runs each sandbox once, in a new
# shuffled order, timed with bash's clock (no process to start for it):
# work a run leaves behind (exits, kernel cleanup) then falls on whichever
# sandbox runs next, not on the same one's next run as in the chunks above.
declare -A us
for _ in $(seq "$runs"); do
    for name in $(printf '%s\n' "${!cmd[@]}" | shuf); do
        t0=${EPOCHREALTIME/./}
        sh -c "${cmd[$name]} >/dev/null 2>&1" || true
        t1=${EPOCHREALTIME/./}
        us[$name]+="$((t1 - t0)) "
    done
done
median() { printf '%s\n' $1 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A med
for name in "${!cmd[@]}"; do med[$name]=$(median "${us[$name]}"); done

declare -A r1 r2
for name in "${!cmd[@]}"; do
    r1[$name]=$(( chunk * rounds * 1000000000 / ns1[$name] ))
    r2[$name]=$(( chunk * rounds * 1000000000 / ns2[$name] ))
done
printf '%-14s %11s %11s %18s %18s %11s %11s %8s\n' sandbox "runs/s (1)" "runs/s (2)" \
    "hutch-judge/x (1)" "hutch-judge/x (2)" "median ms" "h-j/x (med)" failed
for name in "${order[@]}"; do
    [ -n "${r1[$name]:-}" ] || continue
    printf '%-14s %11s %11s %18s %18s %11s %11s %8s\n' "$name" "${r1[$name]}" "${r2[$name]}" \
        "$(awk "BEGIN{printf \"%.2f\", ${r1[hutch-judge]}/${r1[$name]}}")" \
        "$(awk "BEGIN{printf \"%.2f\", ${r2[hutch-judge]}/${r2[$name]}}")" \
        "$(awk "BEGIN{printf \"%.2f\", ${med[$name]}/1000}")" \
        "$(awk "BEGIN{printf \"%.2f\", ${med[$name]}/${med[hutch-judge]}}")" \
        "${fail[$name]}"
done
