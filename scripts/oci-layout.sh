# Helpers to write OCI image layouts by hand (tar + sha256sum + JSON),
# sourced by scripts/build-test-images.sh and bench/pull.sh. The caller sets
# $work (a scratch dir).

sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

# layout_init DIR
layout_init() {
    mkdir -p "$1/blobs/sha256"
    echo '{"imageLayoutVersion":"1.0.0"}' > "$1/oci-layout"
}

# add_blob LAYOUT FILE -> prints the hex digest
add_blob() {
    local h
    h=$(sha "$2")
    cp "$2" "$1/blobs/sha256/$h"
    echo "$h"
}

# tar_dir SRC OUT: a layer tar of SRC's contents, numeric owners kept.
tar_dir() {
    tar --numeric-owner --sort=name --mtime=@1700000000 -C "$1" -cf "$2" .
}

# compress none|gzip|zstd IN -> prints the path of the blob and its media type
compress() {
    case $1 in
        none) echo "$2 application/vnd.oci.image.layer.v1.tar" ;;
        gzip) gzip -n -1 -c "$2" > "$2.gz"; echo "$2.gz application/vnd.oci.image.layer.v1.tar+gzip" ;;
        zstd) zstd -q -1 -c "$2" > "$2.zst"; echo "$2.zst application/vnd.oci.image.layer.v1.tar+zstd" ;;
    esac
}

# image LAYOUT ARCH CONFIG_EXTRA "tar:comp ..." -> prints "digest size" of the manifest
image() {
    local layout=$1 arch=$2 extra=$3 layers=$4
    local diffs="" descs="" sep=""
    for spec in $layers; do
        local t=${spec%%:*} c=${spec##*:}
        local diff
        diff=$(sha "$t")
        read -r blob media < <(compress "$c" "$t")
        local h
        h=$(add_blob "$layout" "$blob")
        diffs="$diffs$sep\"sha256:$diff\""
        descs="$descs$sep{\"mediaType\":\"$media\",\"digest\":\"sha256:$h\",\"size\":$(size "$blob")}"
        sep=","
    done
    local cfg="$work/config.$RANDOM.json"
    printf '{"architecture":"%s","os":"linux","created":"2024-01-01T00:00:00Z","config":{%s},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
        "$arch" "$extra" "$diffs" > "$cfg"
    local ch
    ch=$(add_blob "$layout" "$cfg")
    local man="$work/manifest.$RANDOM.json"
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
        "$ch" "$(size "$cfg")" "$descs" > "$man"
    local mh
    mh=$(add_blob "$layout" "$man")
    echo "$mh $(size "$man")"
}

# index_single LAYOUT TAG DIGEST SIZE: index.json naming one manifest
index_single() {
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
        "$3" "$4" "$2" > "$1/index.json"
}

# DEST_CREDS=user:password in the environment for a registry with auth.
