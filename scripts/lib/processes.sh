# Process helpers sourced by the bench scripts and the real-client tests.

# stop_pid PID: SIGTERM, up to 10 s to exit, then SIGKILL (said on stderr);
# reap it. Nothing for an empty PID or one already gone.
# shellcheck disable=SC2317  # also called from EXIT traps only
stop_pid() {
    local pid="$1" i
    [[ -n "$pid" ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "$(basename "$0"): pid $pid did not exit on SIGTERM within 10 s: SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}
