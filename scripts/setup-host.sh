#!/usr/bin/env bash
# Prepare a Debian machine for hutch's tests, the way a desktop distribution
# already is and nothing more: the packages the tests use, two unprivileged
# test users (one with a subordinate id range, one without), and the device
# modes udev would set. Run as root. Idempotent.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "setup-host.sh: run me as root (sudo $0)" >&2
    exit 1
fi

packages=(
    uidmap fuse-overlayfs busybox-static bubblewrap   # engine and its peers
    tmux util-linux procps                            # tty tests (script, tmux)
    gcc libc6-dev                                     # the static probe program
    docker-registry skopeo apache2-utils openssl curl zstd   # image tests: local registries
    libcap2-bin tar                                   # image tests: a layer made with setcap + tar --xattrs
    podman                                            # hutch-runtime tests: a real OCI client
    slirp4netns passt                                 # user-mode networking (--network private, -p)
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# udev makes these 0666 on desktop distributions; this machine has no udev.
for dev in /dev/fuse /dev/net/tun; do
    [ -e "$dev" ] && chmod 0666 "$dev"
done

# hutch-sub: a user with a subordinate range, as useradd gives on Debian.
if ! id hutch-sub >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash hutch-sub
fi
if ! grep -q '^hutch-sub:' /etc/subuid; then
    usermod --add-subuids 200000-265535 --add-subgids 200000-265535 hutch-sub
fi
# hutch-nosub: no subordinate range, as on many HPC and older machines.
if ! id hutch-nosub >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash hutch-nosub
fi
sed -i '/^hutch-nosub:/d' /etc/subuid /etc/subgid

# Delegate a cgroup subtree to hutch-sub, as LXC's pam_cgfs does on cgroup
# v1 hosts (a chowned directory per controller), so the judge tests cover the
# cgroup path for hutch-sub and the rlimit-and-watchdog path for hutch-nosub.
# On a cgroup v2 host, delegate with systemd instead (see README: Limits).
# freezer: hutch-runtime's pause and resume.
for ctrl in memory pids cpu cpuacct freezer; do
    root=/sys/fs/cgroup/$ctrl
    if [ -f "$root/cgroup.procs" ] && [ ! -f /sys/fs/cgroup/cgroup.controllers ]; then
        mkdir -p "$root/user/hutch-sub"
        chown -R hutch-sub: "$root/user/hutch-sub"
    fi
done

echo "setup-host.sh: ready (users hutch-sub and hutch-nosub)"
