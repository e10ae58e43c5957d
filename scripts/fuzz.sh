#!/usr/bin/env bash
# Run every cargo-fuzz target in fuzz/fuzz_targets for a bounded time.
#
# usage: scripts/fuzz.sh [SECONDS [TARGET...]]
#        (default 30 seconds per target; all targets unless some are named)
#
# Installs cargo-fuzz if it is missing. By default the stable toolchain is
# used with RUSTC_BOOTSTRAP=1 (cargo-fuzz needs -Z flags), so no nightly is
# required; set FUZZ_TOOLCHAIN=nightly to use `cargo +nightly` instead.
# Exits non-zero if any target crashes, hangs or fails to build; crashing
# inputs are left in fuzz/artifacts/<target>/.

set -euo pipefail

die() {
    # die STATUS MESSAGE: MESSAGE on stderr, then exit with STATUS.
    echo "$2" >&2
    exit "$1"
}

usage() {
    die 2 "usage: $0 [SECONDS [TARGET...]]   (run each fuzz target, or the named ones, for SECONDS, default 30)"
}

per_target="${1:-30}"
[[ "$per_target" =~ ^[1-9][0-9]*$ ]] || usage
[[ $# -gt 0 ]] && shift

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fuzz_dir="$repo_root/fuzz"

# Time limits: building may take a few minutes from scratch; a run gets its
# fuzzing time plus slack for start-up and writing out a crash.
build_limit=1200
run_limit=$((per_target + 120))

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz"
    timeout -k 30 "$build_limit" cargo install cargo-fuzz --locked
fi

cargo_fuzz=(cargo)
if [[ -n "${FUZZ_TOOLCHAIN:-}" ]]; then
    cargo_fuzz+=("+$FUZZ_TOOLCHAIN")
else
    export RUSTC_BOOTSTRAP=1
fi
cargo_fuzz+=(fuzz)

cd "$fuzz_dir"

targets=()
if [[ $# -gt 0 ]]; then
    for name in "$@"; do
        [[ -f "fuzz_targets/$name.rs" ]] || die 2 "no fuzz target $name in $fuzz_dir/fuzz_targets"
        targets+=("$name")
    done
else
    for file in fuzz_targets/*.rs; do
        [[ -e "$file" ]] || continue
        name="$(basename "$file" .rs)"
        targets+=("$name")
    done
fi
[[ ${#targets[@]} -gt 0 ]] || die 1 "no fuzz targets in $fuzz_dir/fuzz_targets"

echo "==> building ${#targets[@]} fuzz targets"
timeout -k 30 "$build_limit" "${cargo_fuzz[@]}" build

failed=()
for target in "${targets[@]}"; do
    echo "==> fuzzing $target for ${per_target}s"
    # -timeout: a single input taking over 10 s counts as a hang.
    if timeout -k 30 "$run_limit" "${cargo_fuzz[@]}" run "$target" -- \
        -max_total_time="$per_target" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
        echo "==> $target: ok"
    else
        status=$?
        if [[ $status -eq 124 ]]; then
            echo "==> $target: did not finish within ${run_limit}s" >&2
        else
            echo "==> $target: FAILED (exit $status); see $fuzz_dir/artifacts/$target/" >&2
        fi
        failed+=("$target")
    fi
done

[[ ${#failed[@]} -eq 0 ]] || die 1 "==> failing fuzz targets: ${failed[*]}"
echo "==> ${#targets[@]} fuzz targets (${targets[*]}) ran ${per_target}s each without a crash"
