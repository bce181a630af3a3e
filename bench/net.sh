#!/usr/bin/env bash
# Benchmark (not a test): user-mode networking throughput and connection
# latency, hutch beside rootless Podman with the same backend and beside the
# host's own loopback. Run as root; hutch and podman run as an unprivileged
# user with a subuid range.
#
#   bench/net.sh [ROUNDS]           (default 3; each cell is the median)
#
# Paths measured:
#   to host    a client in the sandbox, a server on the host's loopback,
#              reached through the backend's address for the host
#              (allow_host_loopback=true: slirp4netns's 10.0.2.2, pasta's
#              gateway address)
#   published  a client on the host, a server in the sandbox, through
#              -p 127.0.0.1:HOSTPORT:PORT
#   loopback   client and server on the host's 127.0.0.1 (the ceiling)
# Throughput is iperf3's receiver rate (bench/netbench.c's push when iperf3
# is missing, or with NO_IPERF=1); latency is connect + a 1-byte round trip +
# close, median and 90th percentile of PINGS connections (bench/netbench.c).
#
# Environment: BENCH_USER (default hutch-sub), HUTCH (default
# $CARGO_TARGET_DIR or target, /<host>/release/hutch), SECS (per throughput run,
# default 5), PINGS (default 300), PORT_BASE (default 15200),
# PODMAN_FLAGS (default "--cgroup-manager=cgroupfs --runtime=runc").
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-3}
user=${BENCH_USER:-hutch-sub}
hutch_src=${HUTCH:-$(ls "${CARGO_TARGET_DIR:-target}"/*/release/hutch 2>/dev/null | head -1)}
secs=${SECS:-5}
pings=${PINGS:-300}
base=${PORT_BASE:-15200}
registry=127.0.0.1:5790
image=$registry/hutch/netbench:latest
podman_flags=${PODMAN_FLAGS:---cgroup-manager=cgroupfs --runtime=runc}
[ "$(id -u)" = 0 ] || { echo "net.sh: run me as root (the benchmark drops to $user)" >&2; exit 1; }
[ -x "$hutch_src" ] || { echo "net.sh: build first: cargo build --release" >&2; exit 1; }

# --- setup: iperf3, the registry, an image with iperf3 and netbench ---
if ! command -v iperf3 >/dev/null && [ "${NO_IPERF:-0}" != 1 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iperf3 >/dev/null 2>&1 ||
        echo "net.sh: cannot install iperf3; measuring throughput with netbench push" >&2
fi
iperf=0
command -v iperf3 >/dev/null && [ "${NO_IPERF:-0}" != 1 ] && iperf=1
bash scripts/start-registry.sh >/dev/null

work=$(mktemp -d /tmp/hutch-netbench.XXXXXX)
chmod 755 "$work"
cp "$hutch_src" "$work/hutch"
mkdir -m 700 "$work/data"
chown "$user:" "$work/data"
home=$(getent passwd "$user" | cut -d: -f6)
host_pids=()
cleanup() {
    for p in "${host_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    as_user "$work/hutch" rm -f nb-srv >/dev/null 2>&1 || true
    as_user podman $podman_flags rm -f -t 0 nb-srv >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

as_user() {
    setpriv --reuid="$user" --regid="$user" --clear-groups \
        env -i HOME="$home" PATH=/usr/local/bin:/usr/bin:/bin HUTCH_DATA_DIR="$work/data" "$@"
}

gcc -static -O2 -o "$work/netbench" bench/netbench.c
root="$work/rootfs"
bash scripts/build-rootfs.sh "$root" >/dev/null
cp "$work/netbench" "$root/usr/bin/netbench"
if [ "$iperf" = 1 ]; then
    # iperf3 and the shared libraries it loads, at their host paths.
    for f in "$(command -v iperf3)" $(ldd "$(command -v iperf3)" | grep -o '/[^ ]*'); do
        mkdir -p "$root$(dirname "$f")"
        cp -L "$f" "$root$f"
    done
fi
# shellcheck source=scripts/oci-layout.sh
source scripts/oci-layout.sh
tar_dir "$root" "$work/layer.tar"
layout="$work/oci"; layout_init "$layout"
read -r d s < <(image "$layout" "$(dpkg --print-architecture)" '"Cmd":["sh"],"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]' "$work/layer.tar:gzip")
index_single "$layout" latest "$d" "$s"
skopeo copy -q --dest-tls-verify=false "oci:$layout:latest" "docker://$image" >/dev/null
as_user "$work/hutch" pull -q "$image" >/dev/null
as_user podman $podman_flags pull -q --tls-verify=false "$image" >/dev/null

# --- servers on the host's loopback ---
p_iperf=$base p_nb=$((base + 1)) pub_iperf=$((base + 11)) pub_nb=$((base + 12))
if [ "$iperf" = 1 ]; then
    iperf3 -s -B 127.0.0.1 -p "$p_iperf" >/dev/null 2>&1 &
    host_pids+=($!)
fi
"$work/netbench" serve "$p_nb" >/dev/null &
host_pids+=($!)
gateway=$(ip -4 route show default | awk '{print $3; exit}')

# Clients: "$@" is the runner prefix (empty for the host).
throughput() { # RUNNER... -- ADDR PORT
    local args=() addr port
    while [ "$1" != -- ]; do args+=("$1"); shift; done
    addr=$2 port=$3
    if [ "$iperf" = 1 ]; then
        # An iperf3 server takes one test at a time and may still be
        # closing the last one: try again.
        local out
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            out=$("${args[@]}" iperf3 -c "$addr" -p "$port" -t "$secs" -f m 2>&1) && break
            sleep 0.5
        done
        echo "$out" | awk '/receiver/ {print $(NF-2)}'
    else
        "${args[@]}" netbench push "$addr" "$port" "$secs"
    fi
}
latency() { # RUNNER... -- ADDR PORT -> "median p90"
    local args=()
    while [ "$1" != -- ]; do args+=("$1"); shift; done
    "${args[@]}" netbench ping "$2" "$3" "$pings"
}
on_host() { PATH="$work:$PATH" "$@"; }
hutch_in() { as_user "$work/hutch" run --rm --network "$1" "$image" "${@:2}"; }
podman_in() { as_user podman $podman_flags run --rm --network "$1" "$image" "${@:2}"; }

# A server in the sandbox, published on the host's loopback, until stopped.
serve_in() { # hutch|podman NETWORK
    local tool=$1 net=$2 cmd
    cmd="netbench serve 7777 & $([ "$iperf" = 1 ] && echo 'iperf3 -s -p 5201 &') wait"
    if [ "$tool" = hutch ]; then
        as_user "$work/hutch" run -d --name nb-srv --network "$net" \
            -p "127.0.0.1:$pub_iperf:5201" -p "127.0.0.1:$pub_nb:7777" "$image" sh -c "$cmd" >/dev/null
    else
        as_user podman $podman_flags run -d --name nb-srv --network "$net" \
            -p "127.0.0.1:$pub_iperf:5201" -p "127.0.0.1:$pub_nb:7777" "$image" sh -c "$cmd" >/dev/null
    fi
    # Up when a round trip through the published port works.
    for _ in $(seq 100); do
        if "$work/netbench" ping 127.0.0.1 "$pub_nb" 1 >/dev/null 2>&1 &&
            { [ "$iperf" = 0 ] || iperf3 -c 127.0.0.1 -p "$pub_iperf" -n 1K >/dev/null 2>&1; }; then
            return
        fi
        sleep 0.1
    done
    echo "net.sh: the $tool server on $net did not answer" >&2
    exit 1
}
unserve() {
    if [ "$1" = hutch ]; then
        as_user "$work/hutch" rm -f nb-srv >/dev/null
    else
        as_user podman $podman_flags rm -f -t 0 nb-srv >/dev/null
    fi
}

podman_pasta=1
podman_in pasta true >/dev/null 2>&1 || podman_pasta=0

# Each configuration: name, then how to run the to-host client, the
# address of the host from inside, and how to serve (tool network).
configs=(
    "hutch slirp4netns|hutch_in slirp4netns:allow_host_loopback=true|10.0.2.2|hutch slirp4netns"
    "podman slirp4netns|podman_in slirp4netns:allow_host_loopback=true|10.0.2.2|podman slirp4netns"
    "podman slirp4netns (port_handler=slirp4netns)|||podman slirp4netns:port_handler=slirp4netns"
    "hutch pasta|hutch_in pasta:allow_host_loopback=true|$gateway|hutch pasta"
)
[ "$podman_pasta" = 1 ] && configs+=("podman pasta|podman_in pasta:--map-gw|$gateway|podman pasta")

declare -A res
for r in $(seq "$rounds"); do
    echo "net.sh: round $r of $rounds" >&2
    res[loop,tput,$r]=$(throughput on_host -- 127.0.0.1 "$([ "$iperf" = 1 ] && echo "$p_iperf" || echo "$p_nb")")
    res[loop,lat,$r]=$(latency on_host -- 127.0.0.1 "$p_nb")
    for c in "${configs[@]}"; do
        IFS='|' read -r name runner addr serve <<<"$c"
        if [ -n "$runner" ]; then
            # shellcheck disable=SC2086
            res[$name,out_tput,$r]=$(throughput $runner -- "$addr" "$([ "$iperf" = 1 ] && echo "$p_iperf" || echo "$p_nb")")
            # shellcheck disable=SC2086
            res[$name,out_lat,$r]=$(latency $runner -- "$addr" "$p_nb")
        fi
        # shellcheck disable=SC2086
        serve_in $serve
        res[$name,in_tput,$r]=$(throughput on_host -- 127.0.0.1 "$([ "$iperf" = 1 ] && echo "$pub_iperf" || echo "$pub_nb")")
        res[$name,in_lat,$r]=$(latency on_host -- 127.0.0.1 "$pub_nb")
        unserve "${serve%% *}"
    done
done

# --- report: medians, and ratios against the host and against Podman ---
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) {print ""} else if (NR%2) {print a[(NR+1)/2]} else {printf "%.0f\n", (a[NR/2]+a[NR/2+1])/2}}'; }
cell() { # KEY FIELD(1=median,2=p90 for latency) -> median over rounds
    local key=$1 field=${2:-1}
    for r in $(seq "$rounds"); do
        if [ -n "${res[$key,$r]:-}" ]; then echo "${res[$key,$r]}" | awk -v f="$field" '{print $f}'; fi
    done | median
}
ratio() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}' || echo -; }

tool=$([ "$iperf" = 1 ] && echo iperf3 || echo "netbench push")
loop_t=$(cell loop,tput) loop_l=$(cell loop,lat)
echo
echo "Throughput in Mbit/s ($tool, ${secs}s, median of $rounds); latency in µs (connect + 1-byte round trip, median / p90 of $pings)."
echo "x host: the rate as a share of the host's loopback, or the latency as a multiple of it."
echo "x podman: hutch's rate / Podman's (>= 1: hutch not slower), Podman's latency / hutch's (>= 1: hutch not slower)."
echo
printf '%-46s %10s %8s %14s %8s\n' "" Mbit/s "x host" "latency µs" "x host"
printf '%-46s %10s %8s %14s %8s\n' "host loopback" "$loop_t" 1.00 "$loop_l / $(cell loop,lat 2)" 1.00
for dir in out in; do
    [ "$dir" = out ] && echo "to a server on the host:" || echo "to a server in the sandbox through a published port:"
    for c in "${configs[@]}"; do
        IFS='|' read -r name runner _ _ <<<"$c"
        [ "$dir" = out ] && [ -z "$runner" ] && continue
        t=$(cell "$name,${dir}_tput") l=$(cell "$name,${dir}_lat") l90=$(cell "$name,${dir}_lat" 2)
        printf '  %-44s %10s %8s %14s %8s\n' "$name" "$t" "$(ratio "$t" "$loop_t")" "$l / $l90" "$(ratio "$l" "$loop_l")"
    done
    for b in slirp4netns pasta; do
        ht=$(cell "hutch $b,${dir}_tput") pt=$(cell "podman $b,${dir}_tput")
        hl=$(cell "hutch $b,${dir}_lat") pl=$(cell "podman $b,${dir}_lat")
        if [ -n "$pt" ]; then
            printf '  %-44s %10s %8s %14s %8s\n' "hutch / podman, $b" "$(ratio "$ht" "$pt")" "" "$(ratio "$pl" "$hl")" ""
        else
            printf '  %-44s %s\n' "hutch / podman, $b" "n/a (podman $(podman --version | awk '{print $3}') has no $b network)"
        fi
    done
done
