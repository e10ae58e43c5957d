#!/usr/bin/env bash
# Check the deployment files without a running systemd:
#
#   (a) every unit in scripts/systemd/:
#       - its ExecStart= runs /usr/local/bin/aquatic_* with `-c` naming a
#         sample config that exists in scripts/config/;
#       - `systemd-analyze verify` reports nothing about it (unknown keys and
#         unparsable values are only warnings there, so any line naming the
#         unit counts as a failure, not just the exit code);
#       - `systemd-analyze security --offline` rates its exposure 2.0 or less.
#   (b) every sample config in scripts/config/ loads with its daemon's `-P`:
#       udp*.toml with aquatic_udp, http*.toml with aquatic_http, ws*.toml
#       with aquatic_ws. It must also keep [privileges] drop_privileges off,
#       since the units start the daemons unprivileged.
#
# systemd-analyze needs no systemd as PID 1, but `verify` insists that every
# Exec*= binary exists. Each unit is therefore copied, under its own name, to
# a temporary directory with /usr/local/bin/aquatic_* rewritten to the debug
# build in target/debug/ (built here with `cargo build -p aquatic_*`); every
# other line is verified exactly as shipped. A deliberately broken unit is
# checked first, to prove that verify reports what this script relies on.
#
# usage: bash scripts/test_deployment.sh
# Prints `deployment: N passed, N failed` and exits 1 if anything failed.

set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
repo=$PWD

passed=0
failed=0
pass() { passed=$((passed + 1)); printf 'ok    %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$*"; }
# Indent a command's output under the check it belongs to.
show() { sed 's/^/      | /'; }

finish() {
    printf 'deployment: %d passed, %d failed\n' "$passed" "$failed"
    [[ $failed -eq 0 ]]
    exit
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

shopt -s nullglob
units=(scripts/systemd/*.service)
configs=(scripts/config/*.toml)
shopt -u nullglob

# The daemon a sample config belongs to: udp.toml, udp-small.toml -> aquatic_udp.
daemon_for_config() {
    local name
    name=$(basename "$1")
    printf 'aquatic_%s\n' "${name%%[.\-_]*}"
}

# --- build the daemons the units and configs need ---------------------------

declare -A daemons=()
for unit in "${units[@]}"; do
    while read -r bin; do
        daemons[$bin]=1
    done < <(grep -oE '^Exec[A-Za-z]*=[-@:+!]*/usr/local/bin/aquatic_[a-z0-9_]+' "$unit" | sed 's|.*/||')
done
for config in "${configs[@]}"; do
    daemons[$(daemon_for_config "$config")]=1
done

if [[ ${#daemons[@]} -gt 0 ]]; then
    build_args=()
    for d in "${!daemons[@]}"; do
        build_args+=(-p "$d")
    done
    if out=$(cargo build "${build_args[@]}" 2>&1); then
        pass "cargo build ${build_args[*]}"
    else
        fail "cargo build ${build_args[*]}"
        show <<<"$out"
    fi
fi

# --- (a) systemd units --------------------------------------------------------

if [[ ${#units[@]} -eq 0 ]]; then
    fail "no units in scripts/systemd/"
fi

if [[ ${#units[@]} -gt 0 ]] && ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "systemd-analyze missing: running scripts/install-test-deps.sh"
    bash scripts/install-test-deps.sh | show
fi

analyzer_ok=0
if [[ ${#units[@]} -gt 0 ]]; then
    if ! command -v systemd-analyze >/dev/null 2>&1; then
        fail "systemd-analyze not found (Debian package systemd; run scripts/install-test-deps.sh as root)"
    else
        # Canary: an unknown key and a bad value must be reported.
        mkdir -p "$work/canary"
        cat >"$work/canary/aquatic-canary.service" <<'EOF'
[Service]
ExecStart=/bin/true
NoSuchDirective=yes
ProtectSystem=not-a-value
EOF
        out=$(systemd-analyze verify --man=no "$work/canary/aquatic-canary.service" 2>&1)
        if grep -q 'NoSuchDirective' <<<"$out" && grep -q 'not-a-value' <<<"$out"; then
            pass "systemd-analyze verify reports unknown keys and bad values ($(systemd-analyze --version | head -n1))"
            analyzer_ok=1
        else
            fail "systemd-analyze verify does not report a broken unit; cannot check units this way"
            show <<<"$out"
        fi
    fi
fi

offline_security=0
if [[ $analyzer_ok -eq 1 ]] && systemd-analyze security --help 2>&1 | grep -q -- '--offline'; then
    offline_security=1
fi

for unit in "${units[@]}"; do
    name=$(basename "$unit")

    # ExecStart= as shipped: the installed binary and a config we ship a sample of.
    exec_start=$(grep -E '^ExecStart=' "$unit" || true)
    config_path=$(sed -nE 's/^ExecStart=.* -c ([^ ]+).*/\1/p' <<<"$exec_start")
    if ! grep -qE '^ExecStart=/usr/local/bin/aquatic_[a-z0-9_]+ ' <<<"$exec_start"; then
        fail "$name: ExecStart= does not run /usr/local/bin/aquatic_*: ${exec_start:-none}"
    elif [[ -z "$config_path" ]]; then
        fail "$name: ExecStart= passes no -c CONFIG: $exec_start"
    elif [[ ! -f "scripts/config/$(basename "$config_path")" ]]; then
        fail "$name: ExecStart= reads $config_path, but there is no scripts/config/$(basename "$config_path") sample"
    else
        pass "$name: ExecStart= runs $(sed -E 's/^ExecStart=([^ ]+).*/\1/' <<<"$exec_start") with a shipped sample ($config_path)"
    fi

    [[ $analyzer_ok -eq 1 ]] || continue

    # A copy with the binaries pointing at the debug build.
    dir="$work/units/${name%.service}"
    mkdir -p "$dir"
    sed -E "s#^(Exec[A-Za-z]*=[-@:+!]*)/usr/local/bin/(aquatic_[a-z0-9_]+)#\1$repo/target/debug/\2#" \
        "$unit" >"$dir/$name"

    out=$(systemd-analyze verify --man=no "$dir/$name" 2>&1)
    status=$?
    if [[ $status -eq 0 ]] && ! grep -qF "$name" <<<"$out"; then
        pass "$name: systemd-analyze verify"
        # Lines about other units (e.g. the distribution's targets) are shown, not counted.
        [[ -z "$out" ]] || show <<<"$out"
    else
        fail "$name: systemd-analyze verify (exit $status)"
        show <<<"$out"
    fi

    if [[ $offline_security -eq 1 ]]; then
        out=$(systemd-analyze security --offline=yes --threshold=20 --no-pager "$dir/$name" 2>&1)
        status=$?
        level=$(grep -oE 'Overall exposure level for [^:]+: [0-9.]+ [A-Z]+' <<<"$out" |
            sed -E 's/.*: ([0-9.]+) ([A-Z]+)$/\1 (\2)/')
        if [[ $status -eq 0 ]]; then
            pass "$name: security exposure ${level:-?}, at most 2.0"
        else
            fail "$name: security exposure ${level:-?} is above 2.0 (systemd-analyze security --offline=yes)"
            grep '✗' <<<"$out" | show
        fi
    elif [[ $analyzer_ok -eq 1 ]]; then
        printf 'skip  %s: exposure check (systemd-analyze security has no --offline)\n' "$name"
    fi
done

# --- (b) sample configs -------------------------------------------------------

if [[ ${#configs[@]} -eq 0 ]]; then
    fail "no sample configs in scripts/config/"
fi

for config in "${configs[@]}"; do
    daemon=$(daemon_for_config "$config")
    bin="target/debug/$daemon"
    if [[ ! -x "$bin" ]]; then
        fail "$config: $bin not built (is there a crate $daemon?)"
        continue
    fi
    if ! out=$("$bin" -c "$config" -P 2>&1); then
        fail "$config: $daemon -c $config -P"
        show <<<"$out"
    elif grep -qE '^drop_privileges *= *true' <<<"$out"; then
        fail "$config: sets [privileges] drop_privileges = true; the units start $daemon unprivileged, so it would fail to start"
    else
        pass "$config: loads with $daemon -P"
    fi
done

finish
