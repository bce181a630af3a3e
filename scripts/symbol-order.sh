#!/usr/bin/env bash
# Regenerates link/symbol-order.txt: the functions a run of hutch executes,
# which build.rs asks the linker to place first in hutch's text (see there
# for why). The layout test (tests/sandbox/layout.rs) fails once most of
# the names have drifted away with changes of code or dependencies.
#
#   scripts/symbol-order.sh     as root (perf records every process; the
#                               runs are made as hutch-sub), with perf
#                               (apt-get install linux-perf) and the
#                               fixture of bench/judge.sh; a release build
#                               and a few relinks, about 15 minutes
#
# How: the functions perf samples in 150 judge runs and 150 default runs,
# the hottest first. Then, relink after relink, the function at each address
# where a run takes a page fault to execute code is appended (it is the
# first the run executes in that 64 KiB window of the file; the others
# there were not sampled), until no new one turns up.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "symbol-order.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root: perf records every process"
command -v perf >/dev/null || die "needs perf: apt-get install linux-perf"
fix=${BENCH_DIR:-/tmp/hutch-bench}
[ -x "$fix/rootfs/usr/bin/hello" ] || die "no fixture in $fix: run bench/judge.sh first"
order=link/symbol-order.txt
work=$(mktemp -d)
chmod 0755 "$work"
cp "$order" "$work/order.before" 2>/dev/null || : > "$work/order.before"
# On any failure the list is as it was, and dated now (rounds date it in
# 2000; see build below) so that the next build sees it.
finished=no
finish() {
    [ "$finished" = yes ] || cp "$work/order.before" "$order"
    touch "$order"
    rm -rf "$work"
}
trap finish EXIT
host=$(rustc -vV | sed -n 's/^host: //p')
exe=$work/hutch-order # perf names a process by its first 15 characters
comm=${exe##*/}

# The runs learnt from, as hutch-sub: the judge run of bench/judge.sh and a
# run with the default policy, the subuid map and an overlay root.
cat > "$work/runs" <<EOF
#!/bin/sh
for i in \$(seq \$1); do
    $exe run --rm --rootfs $fix/rootfs --read-only --tmpfs /tmp --policy judge --time-limit 2 -m 256m --pids-limit 64 /usr/bin/hello
    $exe run --rm --rootfs $fix/rootfs /usr/bin/hello
done >/dev/null
EOF
chmod 0755 "$work/runs"

# Rounds only relink: the list keeps an old time stamp until the end, so
# cargo neither re-runs build.rs nor rebuilds the library for it (the
# linker reads the file anew anyway), and touching main.rs relinks hutch.
build() {
    if [ "${1:-}" != first ]; then
        touch -d 2000-01-01 "$order"
        touch src/main.rs
    fi
    cargo build --release -q --bin hutch
    install -m 0755 "${CARGO_TARGET_DIR:-target}/$host/release/hutch" "$exe"
    nm --defined-only "$exe" | awk '{print $3}' | sort -u > "$work/names"
}
# Names perf printed, less offsets, kept if this build defines them.
defined() { sed 's/+0x[0-9a-f]*$//' | grep -Fxf "$work/names" || true; }
# Text faults of N x 2 runs: prints the count per run; the functions to
# $work/faulted.
# (Called in $(...), where bash ignores set -e: failures exit by hand.)
text_faults() {
    perf record -q -d -e minor-faults -c 1 -a -o "$work/faults" -- \
        runuser -u hutch-sub -- "$work/runs" "$1" 2>"$work/perf.err" ||
        { cat "$work/perf.err" >&2; exit 1; }
    perf script -i "$work/faults" -F comm,addr,ip,sym --no-demangle 2>/dev/null |
        awk -v c="$comm" '$1 == c && $2 == $4 {print $5}' > "$work/faulted.all"
    [ -s "$work/faulted.all" ] || { echo "symbol-order.sh: perf saw no code page fault of $comm" >&2; exit 1; }
    defined < "$work/faulted.all" | sort -u > "$work/faulted"
    echo $(($(wc -l < "$work/faulted.all") / ($1 * 2)))
}

: > "$order"
build first
before=$(text_faults 10) || exit 1
echo "no order: $before code page faults per run"
perf record -q -F 20000 -e cpu-clock:u -a -o "$work/samples" -- runuser -u hutch-sub -- "$work/runs" 150
perf script -i "$work/samples" -F comm,ip,sym --no-demangle 2>/dev/null |
    awk -v c="$comm" '$1 == c {print $3}' | defined | sort | uniq -c | sort -rn | awk '{print $2}' > "$order"
[ -s "$order" ] || die "perf sampled no function of $comm"
echo "sampled: $(wc -l < "$order") functions"
for round in 1 2 3 4 5 6 7 8; do
    build
    faults=$(text_faults 10) || exit 1
    grep -Fxvf "$order" "$work/faulted" > "$work/new" || true
    echo "round $round: $faults code page faults per run, $(wc -l < "$work/new") functions not yet listed"
    [ -s "$work/new" ] || break
    if [ "$round" = 8 ]; then
        echo "round 8 still found new functions: they are not added; run the script again" >&2
        break
    fi
    cat "$work/new" >> "$order"
done
finished=yes
echo "$order: $(wc -l < "$order") functions; code page faults per run $before -> $faults"
