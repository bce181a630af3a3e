#!/usr/bin/env bash
# Start local registries for the image tests (Debian's docker-registry, the
# CNCF distribution server), in the background, idempotently:
#
#   127.0.0.1:5790  plain HTTP
#   127.0.0.1:5791  TLS, with a self-signed CA made here (ca.crt)
#   127.0.0.1:5792  TLS + htpasswd basic auth (user hutch, password hutch-secret)
#
#   scripts/start-registry.sh [DIR]     (default /tmp/hutch-registry)
#
# Then scripts/build-test-images.sh pushes the test images. Run as root or
# any user; DIR holds the storage, certificates and logs.
set -euo pipefail

dir=${1:-/tmp/hutch-registry}
mkdir -p "$dir"
chmod 755 "$dir"

if ! command -v docker-registry >/dev/null; then
    echo "start-registry.sh: docker-registry is missing (hint: scripts/setup-host.sh)" >&2
    exit 1
fi

if [ ! -s "$dir/ca.crt" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -sha256 \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" -subj "/CN=hutch test CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout "$dir/server.key" -out "$dir/server.csr" \
        -subj "/CN=127.0.0.1" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > "$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
        -days 3650 -sha256 -extfile "$dir/server.ext" -out "$dir/server.crt" 2>/dev/null
    chmod 644 "$dir/ca.crt"
fi
if [ ! -s "$dir/htpasswd" ]; then
    if command -v htpasswd >/dev/null; then
        htpasswd -Bbn hutch hutch-secret > "$dir/htpasswd"
    else
        echo "start-registry.sh: htpasswd is missing (hint: apt-get install apache2-utils)" >&2
        exit 1
    fi
fi

up() { curl -s -o /dev/null -k "$1" --max-time 2; }

start() { # name port tls auth
    local name=$1 port=$2 tls=$3 auth=$4 conf="$dir/$1.yml"
    mkdir -p "$dir/$name"
    {
        echo "version: 0.1"
        echo "log: {level: warn}"
        echo "storage:"
        echo "  filesystem: {rootdirectory: $dir/$name}"
        echo "  delete: {enabled: true}"
        echo "http:"
        echo "  addr: 127.0.0.1:$port"
        if [ "$tls" = 1 ]; then
            echo "  tls: {certificate: $dir/server.crt, key: $dir/server.key}"
        fi
        if [ "$auth" = 1 ]; then
            echo "auth:"
            echo "  htpasswd: {realm: hutch-test, path: $dir/htpasswd}"
        fi
    } > "$conf"
    local scheme=http
    [ "$tls" = 1 ] && scheme=https
    if up "$scheme://127.0.0.1:$port/v2/"; then
        return
    fi
    setsid nohup docker-registry serve "$conf" > "$dir/$name.log" 2>&1 < /dev/null &
    for _ in $(seq 1 100); do
        up "$scheme://127.0.0.1:$port/v2/" && return
        sleep 0.1
    done
    echo "start-registry.sh: registry $name on port $port did not start; see $dir/$name.log" >&2
    exit 1
}

start plain 5790 0 0
start tls 5791 1 0
start auth 5792 1 1
echo "start-registry.sh: registries on 127.0.0.1:5790 (http), :5791 (tls), :5792 (tls+auth)"
