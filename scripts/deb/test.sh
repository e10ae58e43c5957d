#!/usr/bin/env bash
# Build the three Debian packages (scripts/deb/build.sh) and check each on
# this machine (as root; CI machines are throwaway):
#   - `dpkg -i` installs /usr/bin/aquatic_*, the unit and /etc/aquatic/*.toml,
#     the config registered as a conffile;
#   - `systemd-analyze verify` reports nothing about the installed unit, and
#     its ExecStart= runs the installed binary on the installed config;
#   - the installed config loads with the installed binary's `-P`;
#   - a local change to the config survives installing the package again;
#   - `dpkg -r` removes the binary and the unit but keeps the changed
#     config; `dpkg --purge` removes it too, and nothing of the package is
#     left.
# A package already installed under the same name is purged first.
#
# usage: bash scripts/deb/test.sh
# Prints `packages: N passed, N failed` and exits 1 if anything failed.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

passed=0
failed=0
pass() { passed=$((passed + 1)); printf 'ok    %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$*"; }

[[ $EUID -eq 0 ]] || { echo "deb/test: needs root (dpkg -i)" >&2; exit 1; }
bash scripts/deb/build.sh || { echo "deb/test: build failed" >&2; exit 1; }

unit_dir() {
    # Where the package put its unit (Debian 12: /lib/systemd/system).
    dpkg -L "$1" | grep -E '/systemd/system/[^/]+\.service$' | head -n 1
}

for d in udp http ws; do
    pkg="aquatic-$d"
    deb="$(ls -1 target/debian/"${pkg}"_*.deb 2>/dev/null | tail -n 1)"
    [[ -n "$deb" ]] || { fail "$pkg: no package built"; continue; }
    dpkg --purge "$pkg" >/dev/null 2>&1

    if dpkg -i "$deb" >/tmp/deb-test-$d.log 2>&1; then
        pass "$pkg: dpkg -i $(basename "$deb")"
    else
        fail "$pkg: dpkg -i"; sed 's/^/      | /' /tmp/deb-test-$d.log; continue
    fi
    unit="$(unit_dir "$pkg")"
    if [[ -x /usr/bin/aquatic_$d && -f /etc/aquatic/$d.toml && -n "$unit" && -f "$unit" ]]; then
        pass "$pkg: /usr/bin/aquatic_$d, /etc/aquatic/$d.toml and $unit installed"
    else
        fail "$pkg: files missing (unit '$unit')"; dpkg -L "$pkg" | sed 's/^/      | /'
    fi
    if dpkg-query -W -f='${Conffiles}\n' "$pkg" | grep -q "/etc/aquatic/$d.toml"; then
        pass "$pkg: /etc/aquatic/$d.toml is a conffile"
    else
        fail "$pkg: /etc/aquatic/$d.toml is not a conffile"
    fi
    out="$(systemd-analyze verify "$unit" 2>&1)"
    if ! grep -q "aquatic-$d" <<<"$out" && grep -q "^ExecStart=/usr/bin/aquatic_$d -c /etc/aquatic/$d.toml$" "$unit"; then
        pass "$pkg: systemd-analyze verify: nothing to report; ExecStart= runs the installed binary and config"
    else
        fail "$pkg: unit"; { echo "$out"; grep ExecStart= "$unit"; } | sed 's/^/      | /'
    fi
    if out="$(/usr/bin/aquatic_"$d" -c /etc/aquatic/"$d".toml -P 2>&1)"; then
        pass "$pkg: the installed config loads (-P)"
    else
        fail "$pkg: -P"; sed 's/^/      | /' <<<"$out"
    fi

    echo "# local change $$" >>"/etc/aquatic/$d.toml"
    dpkg -i --force-confold "$deb" >/dev/null 2>&1
    if grep -q "# local change $$" "/etc/aquatic/$d.toml"; then
        pass "$pkg: a local change to the config survives a reinstall"
    else
        fail "$pkg: the local change was lost on reinstall"
    fi

    dpkg -r "$pkg" >/dev/null 2>&1
    if [[ ! -e /usr/bin/aquatic_$d && ! -e "$unit" && -f /etc/aquatic/$d.toml ]]; then
        pass "$pkg: dpkg -r removes binary and unit, keeps the changed config"
    else
        fail "$pkg: after dpkg -r"; ls -la "/usr/bin/aquatic_$d" "$unit" "/etc/aquatic/$d.toml" 2>&1 | sed 's/^/      | /'
    fi
    dpkg --purge "$pkg" >/dev/null 2>&1
    if [[ ! -e /etc/aquatic/$d.toml ]] && ! dpkg-query -W "$pkg" >/dev/null 2>&1; then
        pass "$pkg: dpkg --purge removes the config and the package"
    else
        fail "$pkg: after dpkg --purge"
    fi
done
rmdir /etc/aquatic 2>/dev/null

printf 'packages: %d passed, %d failed\n' "$passed" "$failed"
[[ $failed -eq 0 ]]
