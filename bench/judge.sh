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
# Commands below are split into words unquoted: no globbing of them.
set -f
cd "$(dirname "$0")/.."
runs=${1:-200}
fix=${BENCH_DIR:-/tmp/hutch-bench}
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$fix"
    cargo build --release -q
    install -m 0755 "${CARGO_TARGET_DIR:-target}/$(rustc -vV | sed -n 's/^host: //p')/release/hutch" "$fix/hutch"
    [ -f "$fix/rootfs/etc/hosts" ] || scripts/build-rootfs.sh "$fix/rootfs" hutch-sub >/dev/null
    gcc -static -O2 -o "$fix/rootfs/usr/bin/hello" tests/programs/hello.c
    chmod -R a+rX "$fix"
    rm -rf "$fix/baseline-data"
    install -d -o hutch-sub -m 0700 "$fix/baseline-data"
    exec runuser -u hutch-sub -- env BENCH_DIR="$fix" HUTCH_BASELINE="${HUTCH_BASELINE:-}" ROUNDS="${ROUNDS:-}" \
        PATH="/opt/hakoniwa/bin:$PATH" bash "$0" "$runs"
fi
hutch=${HUTCH:-$fix/hutch}
root=$fix/rootfs

# hutch's judge filters as raw sock_filter arrays for bwrap: the seccomp
# cache file is "HUTCHBPF", a u32 format, a u32 count, then per program a
# u32 length and that many 8-byte instructions (struct sock_filter).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Every run is started by bench/spawn.c, as a judge's worker pool starts
# them: no shell or xargs between, whose own start was a fifth of the CPU
# of every sandbox's run here.
spawn=$tmp/spawn
gcc -O2 -o "$spawn" bench/spawn.c
cache=$("$hutch" policy check judge | sed -n 's/.*cache: \(hit\|compiled, stored as\) \(\/.*\.bpf\)$/\2/p')
seccomp_fds=""
if [ -n "$cache" ] && [ -f "$cache" ]; then
    u32() { od -An -t u4 -j "$1" -N 4 "$cache" | tr -d ' '; }
    n=$(u32 12)
    off=16
    for i in $(seq 0 $((n - 1))); do
        len=$(u32 "$off")
        dd if="$cache" of="$tmp/bpf$i" bs=1 skip=$((off + 4)) count=$((len * 8)) status=none
        off=$((off + 4 + len * 8))
        # sh (dash), which checks each command below, redirects
        # single-digit descriptors only.
        [ $((3 + i)) -le 9 ] || { seccomp_fds=""; break; }
        seccomp_opens="${seccomp_opens:-} $((3 + i))<$tmp/bpf$i"
        seccomp_fds="$seccomp_fds --add-seccomp-fd $((3 + i))"
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
# Peers by full path, as hutch: no PATH search in any run.
bwrap="$(command -v bwrap || echo bwrap) --unshare-all --die-with-parent --ro-bind $root / --proc /proc --dev /dev"
cmd[bwrap]="$bwrap /usr/bin/hello"
if [ -n "$seccomp_fds" ]; then
    # FD<path: spawn (and sh) open the program on FD for each run.
    cmd[bwrap+seccomp]="$seccomp_opens $bwrap $seccomp_fds /usr/bin/hello"
fi
if command -v hakoniwa >/dev/null; then
    hakoniwa=$(command -v hakoniwa)
    cmd[hakoniwa]="$hakoniwa run --rootdir $root -- /usr/bin/hello"
    cmd[hakoniwa+]="$hakoniwa run --unshare-all --rootdir $root --limit-cpu 2 --limit-as 268435456 -- /usr/bin/hello"
fi

# Check each works before timing it.
for name in "${!cmd[@]}"; do
    out=$(sh -c "${cmd[$name]}" 2>&1) || { echo "$name failed: $out" >&2; unset "cmd[$name]"; continue; }
    [ "$out" = hello ] || { echo "$name printed: $out" >&2; unset "cmd[$name]"; }
done

# Rounds interleave the sandboxes in a shuffled order, so that load from
# elsewhere on the machine hits them all alike; each round's time of a
# sandbox is compared with hutch-judge's in the same round, and the
# figures printed are medians over the rounds: a burst of load from
# elsewhere then moves one round's ratio, not the total's. ROUNDS (default
# 20) rounds of RUNS/ROUNDS runs each.
rounds=${ROUNDS:-20}
[ "$rounds" -gt 0 ] || rounds=20
chunk=$(( (runs + rounds - 1) / rounds ))
declare -A t1 t2 fail
timed() { # name workers -> "nanoseconds failed-runs" for one chunk
    # Unquoted: a command is its words (no spaces in the fixture's paths).
    "$spawn" "$chunk" "$2" ${cmd[$1]}
}
order=(hutch-judge hutch-baseline hutch bwrap bwrap+seccomp hakoniwa hakoniwa+)
for r in $(seq "$rounds"); do
    for name in $(printf '%s\n' "${!cmd[@]}" | shuf); do
        for w in 1 2; do
            read -r t f < <(timed "$name" "$w")
            if [ "$w" = 1 ]; then t1[$name]+="$t "; else t2[$name]+="$t "; fi
            fail[$name]=$(( ${fail[$name]:-0} + f ))
        done
    done
done
# Interleaved single runs: every round runs each sandbox once, in a new
# shuffled order, each timed by spawn from its start to its exit: work a
# run leaves behind (exits, kernel cleanup) then falls on whichever sandbox
# runs next, not on the same one's next run as in the chunks above.
declare -A us
for _ in $(seq "$runs"); do
    for name in $(printf '%s\n' "${!cmd[@]}" | shuf); do
        read -r ns _ < <("$spawn" 1 1 ${cmd[$name]})
        us[$name]+="$((ns / 1000)) "
    done
done
median() { printf '%s\n' $1 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A med
for name in "${!cmd[@]}"; do med[$name]=$(median "${us[$name]}"); done

# Per round: runs/s, and hutch-judge's rate over the sandbox's (its time
# over hutch-judge's); the median over the rounds, with the middle half of
# the rounds' ratios (quartiles) beside it, to show the noise.
quartiles() { # "a b c ..." -> "q1 median q3"
    printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END {
        printf "%s %s %s\n", a[int((NR+3)/4)], a[int((NR+1)/2)], a[int((3*NR+1)/4)]}'
}
rates() { # "ns ns ..." -> "runs/s ..."
    printf '%s\n' $1 | awk -v c="$chunk" '{printf "%.1f ", c * 1e9 / $1}'
}
ratios() { # sandbox's times, hutch-judge's times -> "ratio ..."
    paste -d' ' <(printf '%s\n' $1) <(printf '%s\n' $2) | awk '{printf "%.3f ", $1 / $2}'
}
# How many rounds hutch-judge won, and a one-sided sign test: the chance
# of winning at least that many were the two equally fast (every round a
# coin toss). A lead is beyond this machine's noise when that chance is
# small (below 0.05, say), whatever the spread of the ratios.
wins() { # "ratio ..." -> "won/rounds p"
    printf '%s\n' $1 | awk '{n++; if ($1 > 1) w++} END {
        p = 0; c = 1
        for (k = 0; k <= n; k++) { if (k >= w) p += c; c = c * (n - k) / (k + 1) }
        printf "%d/%d %.3f\n", w, n, p / 2 ^ n }'
}
printf '%-14s %10s %10s %20s %20s %9s %11s %6s  %s\n' sandbox "runs/s (1)" "runs/s (2)" \
    "hutch-judge/x (1)" "hutch-judge/x (2)" "median ms" "h-j/x (med)" failed \
    "hutch-judge won (1) (2), sign test p"
for name in "${order[@]}"; do
    [ -n "${cmd[$name]:-}" ] || continue
    read -r _ rate1 _ < <(quartiles "$(rates "${t1[$name]}")")
    read -r _ rate2 _ < <(quartiles "$(rates "${t2[$name]}")")
    r1=$(ratios "${t1[$name]}" "${t1[hutch-judge]}")
    r2=$(ratios "${t2[$name]}" "${t2[hutch-judge]}")
    read -r a1 m1 b1 < <(quartiles "$r1")
    read -r a2 m2 b2 < <(quartiles "$r2")
    read -r w1 p1 < <(wins "$r1")
    read -r w2 p2 < <(wins "$r2")
    won="$w1 $w2, p $p1 $p2"
    [ "$name" != hutch-judge ] || won=-
    printf '%-14s %10.0f %10.0f %20s %20s %9s %11s %6s  %s\n' "$name" "$rate1" "$rate2" \
        "$(printf '%.2f (%.2f-%.2f)' "$m1" "$a1" "$b1")" \
        "$(printf '%.2f (%.2f-%.2f)' "$m2" "$a2" "$b2")" \
        "$(awk "BEGIN{printf \"%.2f\", ${med[$name]}/1000}")" \
        "$(awk "BEGIN{printf \"%.2f\", ${med[$name]}/${med[hutch-judge]}}")" \
        "${fail[$name]}" "$won"
done
