#!/usr/bin/env bash
# Build the image tests' images offline, from Debian's busybox-static, as
# OCI layouts written by hand (tar + sha256sum + JSON), and push them with
# skopeo to the local registry. Idempotent: a stamp skips the work.
#
#   [DEST_CREDS=user:pw] scripts/build-test-images.sh [REGISTRY] [DIR]
#       REGISTRY  default 127.0.0.1:5790 (plain HTTP)
#       DIR       default /tmp/hutch-registry/images
#
# Images (all under REGISTRY/hutch/):
#   busybox:latest   one gzip layer: busybox, /etc/passwd with root, user
#                    and _apt (uid 42); /home/apt owned by 42:42
#   config:latest    the same layer; Entrypoint, Cmd, Env, WorkingDir,
#                    User and StopSignal set
#   layered:latest   three layers: the base (gzip); then (zstd) a whiteout
#                    of /etc/deleteme and /opt/old replaced opaquely; then
#                    (uncompressed) one more file
#   multi:latest     a manifest list: linux/amd64 -> busybox, linux/arm64 ->
#                    an image whose only file says "arm64"
#   web:latest       the base layer and /www/index.html; ExposedPorts 80/tcp
#                    and 8080/tcp, Cmd busybox httpd in the foreground on 80
#   archives         also written to DIR: busybox.oci.tar (OCI archive)
#                    and busybox.docker.tar (docker save layout)
set -euo pipefail

registry=${1:-127.0.0.1:5790}
out=${2:-/tmp/hutch-registry/images}
here=$(cd "$(dirname "$0")" && pwd)
stamp="$out/.pushed-$(echo "$registry" | tr ':/' '__')"
version=4
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$version" ]; then
    echo "build-test-images.sh: images already pushed to $registry"
    exit 0
fi

work=$(mktemp -d /tmp/hutch-images.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
chmod 755 "$out"

# shellcheck source=scripts/oci-layout.sh
source "$here/oci-layout.sh"

push() { # LAYOUT TAG NAME [--all]
    skopeo copy -q ${4:-} --dest-tls-verify=false ${DEST_CREDS:+--dest-creds "$DEST_CREDS"} \
        "oci:$1:$2" "docker://$registry/hutch/$3:latest" >/dev/null
}

arch=$(dpkg --print-architecture)

# --- the base layer: busybox, users, a file of uid 42 ---
base="$work/base"
bash "$here/build-rootfs.sh" "$base" >/dev/null
echo "_apt:x:42:65534::/nonexistent:/usr/sbin/nologin" >> "$base/etc/passwd"
mkdir -p "$base/home/apt" "$base/opt/old"
echo apt > "$base/home/apt/file"
chown -R 42:42 "$base/home/apt"
echo "delete me" > "$base/etc/deleteme"
echo a > "$base/opt/old/a"
echo b > "$base/opt/old/b"
tar_dir "$base" "$work/base.tar"

# --- busybox ---
l="$work/oci-busybox"; layout_init "$l"
read -r d s < <(image "$l" "$arch" '"Cmd":["sh"],"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]' "$work/base.tar:gzip")
index_single "$l" latest "$d" "$s"
push "$l" latest busybox
# Archives for `hutch load`.
skopeo copy -q "oci:$l:latest" "oci-archive:$out/busybox.oci.tar:hutch/busybox-oci:latest" >/dev/null
rm -f "$out/busybox.docker.tar"
skopeo copy -q "oci:$l:latest" "docker-archive:$out/busybox.docker.tar:hutch/busybox-docker:latest" >/dev/null

# --- config ---
l="$work/oci-config"; layout_init "$l"
cp "$work/base.tar" "$work/base2.tar"
read -r d s < <(image "$l" "$arch" '"Entrypoint":["/bin/echo","ep"],"Cmd":["default-cmd"],"Env":["PATH=/usr/bin:/bin","FOO=from-image"],"WorkingDir":"/opt/old","User":"1000","StopSignal":"SIGUSR1"' "$work/base2.tar:gzip")
index_single "$l" latest "$d" "$s"
push "$l" latest config

# --- layered: whiteout and opaque dir (zstd), then a plain layer ---
up1="$work/up1"; mkdir -p "$up1/etc" "$up1/opt/old"
: > "$up1/etc/.wh.deleteme"
: > "$up1/opt/old/.wh..wh..opq"
echo new > "$up1/opt/old/new"
tar_dir "$up1" "$work/up1.tar"
up2="$work/up2"; mkdir -p "$up2/srv"
echo top > "$up2/srv/top"
tar_dir "$up2" "$work/up2.tar"
cp "$work/base.tar" "$work/base3.tar"
l="$work/oci-layered"; layout_init "$l"
read -r d s < <(image "$l" "$arch" '"Cmd":["sh"]' "$work/base3.tar:gzip $work/up1.tar:zstd $work/up2.tar:none")
index_single "$l" latest "$d" "$s"
push "$l" latest layered

# --- multi: a manifest list ---
other=arm64; [ "$arch" = arm64 ] && other=amd64
l="$work/oci-multi"; layout_init "$l"
cp "$work/base.tar" "$work/base4.tar"
read -r d1 s1 < <(image "$l" "$arch" '"Cmd":["sh"]' "$work/base4.tar:gzip")
oa="$work/otherarch"; mkdir -p "$oa"; echo "$other" > "$oa/arch"
tar_dir "$oa" "$work/otherarch.tar"
read -r d2 s2 < <(image "$l" "$other" '"Cmd":["sh"]' "$work/otherarch.tar:gzip")
list="$work/list.json"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"os":"linux","architecture":"%s"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"os":"linux","architecture":"%s"}}]}' \
    "$d2" "$s2" "$other" "$d1" "$s1" "$arch" > "$list"
lh=$(add_blob "$l" "$list")
index_single "$l" latest "$lh" "$(size "$list")"
sed -i 's/image.manifest.v1+json","digest":"sha256:'"$lh"'/image.index.v1+json","digest":"sha256:'"$lh"'/' "$l/index.json"
push "$l" latest multi --all

# --- web: a web server that declares its ports, for -P ---
www="$work/www"; mkdir -p "$www/www"
echo "hello from the web image" > "$www/www/index.html"
tar_dir "$www" "$work/www.tar"
cp "$work/base.tar" "$work/base5.tar"
l="$work/oci-web"; layout_init "$l"
read -r d s < <(image "$l" "$arch" '"Cmd":["httpd","-f","-v","-p","80","-h","/www"],"ExposedPorts":{"80/tcp":{},"8080/tcp":{}}' "$work/base5.tar:gzip $work/www.tar:gzip")
index_single "$l" latest "$d" "$s"
push "$l" latest web

chmod -R a+rX "$out"
echo "$version" > "$stamp"
echo "build-test-images.sh: pushed hutch/{busybox,config,layered,multi,web} to $registry; archives in $out"
