#!/usr/bin/env bash
# Judge throughput: sandboxed runs per second of a tiny static program,
# sequentially and on two workers, hutch beside bwrap and hakoniwa (when
# installed), all in one run so the ratios hold on a noisy machine.
#
#   bench/judge.sh [RUNS]          as an unprivileged user (or as root: it
#                                  then drops to hutch-sub, made by
#                                  scripts/setup-host.sh)
#
# hutch runs with limits on (time, memory, processes), which the others do not
# enforce here: it is measured doing more.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-200}
fix=/tmp/hutch-bench
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$fix"
    cargo build --release -q
    install -m 0755 target/release/hutch "$fix/hutch"
    [ -d "$fix/rootfs" ] || scripts/build-rootfs.sh "$fix/rootfs" hutch-sub >/dev/null
    gcc -static -O2 -o "$fix/rootfs/usr/bin/hello" tests/programs/hello.c
    chmod -R a+rX "$fix"
    exec runuser -u hutch-sub -- env PATH="/opt/hakoniwa/bin:$PATH" bash "$0" "$runs"
fi
hutch=${HUTCH:-$fix/hutch}
root=$fix/rootfs

declare -A cmd
cmd[hutch]="$hutch run --rm --rootfs $root --time-limit 2 -m 256m --pids-limit 64 /usr/bin/hello"
cmd[bwrap]="bwrap --unshare-all --die-with-parent --ro-bind $root / --proc /proc --dev /dev /usr/bin/hello"
if command -v hakoniwa >/dev/null; then
    cmd[hakoniwa]="hakoniwa run --rootdir $root -- /usr/bin/hello"
fi

# Check each works before timing it.
for name in "${!cmd[@]}"; do
    out=$(${cmd[$name]} 2>&1) || { echo "$name failed: $out" >&2; unset "cmd[$name]"; continue; }
    [ "$out" = hello ] || { echo "$name printed: $out" >&2; unset "cmd[$name]"; }
done

rate() { # name workers -> runs per second
    local c=${cmd[$1]} start end
    start=$(date +%s%N)
    seq "$runs" | xargs -P "$2" -I{} sh -c "$c >/dev/null"
    end=$(date +%s%N)
    echo $(( runs * 1000000000 / (end - start) ))
}

declare -A r1 r2
order=(hutch bwrap hakoniwa)
for name in "${order[@]}"; do
    [ -n "${cmd[$name]:-}" ] || continue
    r1[$name]=$(rate "$name" 1)
    r2[$name]=$(rate "$name" 2)
done
printf '%-10s %14s %14s %14s %14s\n' sandbox "runs/s (1)" "runs/s (2)" "hutch/x (1)" "hutch/x (2)"
for name in "${order[@]}"; do
    [ -n "${r1[$name]:-}" ] || continue
    printf '%-10s %14s %14s %14s %14s\n' "$name" "${r1[$name]}" "${r2[$name]}" \
        "$(awk "BEGIN{printf \"%.2f\", ${r1[hutch]}/${r1[$name]}}")" \
        "$(awk "BEGIN{printf \"%.2f\", ${r2[hutch]}/${r2[$name]}}")"
done
