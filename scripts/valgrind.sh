#!/usr/bin/env bash
# The tests of the modules with `unsafe` code under valgrind's memcheck:
# aquatic_common::datagrams (recvmmsg/sendmmsg and their control messages),
# aquatic_common::listen_queue (a getsockopt) and aquatic_common::allocator
# (mimalloc's mi_collect). Any invalid read or
# write, use of uninitialised memory in a system call, or leak of definitely
# lost memory fails the run.
#
# usage: scripts/valgrind.sh   (valgrind from scripts/install-test-deps.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind not found (scripts/install-test-deps.sh)" >&2; exit 1; }

# The test binary of aquatic_common's unit tests, built (debug) if needed.
binary="$(cargo test -p aquatic_common --lib --no-run --message-format=json 2>/dev/null |
    /usr/bin/python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "aquatic_common":
        print(m["executable"])
')"
[[ -x "$binary" ]] || { echo "valgrind.sh: no aquatic_common test binary" >&2; exit 1; }

status=0
for module in datagrams listen_queue allocator; do
    echo "== valgrind: aquatic_common::$module tests =="
    if ! timeout 600 valgrind --error-exitcode=99 --leak-check=full --show-possibly-lost=no --errors-for-leak-kinds=definite \
        --quiet "$binary" "$module::" --test-threads=1; then
        echo "valgrind.sh: $module: memcheck found errors (above)" >&2
        status=1
    fi
done
exit "$status"
