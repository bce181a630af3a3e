#!/usr/bin/env bash
# Build a small root filesystem offline from Debian's busybox-static package:
# busybox with every applet linked, /etc/passwd and /etc/group with root and
# a user 1000, /etc/hosts, a setuid-root copy of busybox, and a setuid-root probe
# (scripts/suid-probe.c, printing its real and effective uid) for the
# privilege tests.
#
#   scripts/build-rootfs.sh DIR [OWNER]
#
# With OWNER (run as root), the tree is chowned to OWNER so that, inside a
# sandbox run by OWNER, its files belong to root as in a real image.
set -euo pipefail

dir=${1:?usage: build-rootfs.sh DIR [OWNER]}
owner=${2:-}

busybox=/bin/busybox
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "ok installed"; then
    echo "build-rootfs.sh: busybox-static is not installed (hint: apt-get install busybox-static)" >&2
    exit 1
fi
if ! file_out=$(od -An -c -N4 "$busybox" 2>/dev/null) || [[ "$file_out" != *E*L*F* ]]; then
    echo "build-rootfs.sh: $busybox is not a binary" >&2
    exit 1
fi

tmp="$dir.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,home/user,proc,sys,dev,var/tmp}
cp "$busybox" "$tmp/bin/busybox"
for applet in $("$busybox" --list-full); do
    [ -e "$tmp/$applet" ] || ln -s /bin/busybox "$tmp/$applet"
done
cat > "$tmp/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$tmp/etc/group" <<'GROUP'
root:x:0:
user:x:1000:
staff:x:50:user
nogroup:x:65534:
GROUP
echo "hutch-test" > "$tmp/etc/hostname"
# As most base images have it (Alpine's baselayout, Docker's busybox): a
# read-only root can then be a plain bind, with hutch's own hosts file
# bound over this one.
printf '127.0.0.1\tlocalhost\n' > "$tmp/etc/hosts"
cp "$busybox" "$tmp/bin/suid-busybox"
here=$(cd "$(dirname "$0")" && pwd)
if ! gcc -static -O2 -o "$tmp/bin/suid-probe" "$here/suid-probe.c"; then
    echo "build-rootfs.sh: cannot build the setuid probe (hint: apt-get install gcc libc6-dev)" >&2
    exit 1
fi
chmod 1777 "$tmp/tmp" "$tmp/var/tmp"
chmod 700 "$tmp/root"
if [ -n "$owner" ]; then
    chown -R "$owner:" "$tmp"
    chown -R "$owner:" "$tmp/home/user"
fi
chmod 4755 "$tmp/bin/suid-busybox" "$tmp/bin/suid-probe"
rm -rf "$dir"
mv "$tmp" "$dir"
echo "build-rootfs.sh: built $dir"
