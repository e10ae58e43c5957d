#!/usr/bin/env bash
# Build the Debian packages aquatic-udp, aquatic-http and aquatic-ws with
# cargo-deb (installed with `cargo install cargo-deb --locked` when
# missing): release binaries, the systemd units of scripts/systemd/ with
# ExecStart= pointing at /usr/bin instead of /usr/local/bin, and the sample
# configs of scripts/config/ as conffiles in /etc/aquatic/. What each
# package holds is in its crate's [package.metadata.deb].
#
# usage: bash scripts/deb/build.sh      -> target/debian/aquatic-*_VERSION_ARCH.deb
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! cargo deb --version >/dev/null 2>&1; then
    echo "deb: installing cargo-deb" >&2
    cargo install cargo-deb --locked --quiet
fi

cargo build --release -p aquatic_udp -p aquatic_http -p aquatic_ws

# The units as shipped, for binaries in /usr/bin (cargo-deb takes them from
# here: [package.metadata.deb] systemd-units).
mkdir -p target/deb-units
for d in udp http ws; do
    sed -e "s#/usr/local/bin/aquatic_$d#/usr/bin/aquatic_$d#g" \
        -e "1a # Installed by the aquatic-$d package: the binary is /usr/bin/aquatic_$d." \
        "scripts/systemd/aquatic-$d.service" >"target/deb-units/aquatic-$d.service"
    if grep -q /usr/local/bin "target/deb-units/aquatic-$d.service"; then
        echo "deb: aquatic-$d.service still names /usr/local/bin" >&2
        exit 1
    fi
done

for d in udp http ws; do
    cargo deb --no-build -p "aquatic_$d" --quiet
done
ls -1 target/debian/aquatic-*.deb
