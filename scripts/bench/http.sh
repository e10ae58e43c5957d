#!/usr/bin/env bash
# Benchmark aquatic_http against opentracker (the upstream build of
# ../shared/peers/opentracker/build.sh; Debian's whitelist-only package as
# opentracker-debian) with aquatic_http_load_test.
#
# usage: scripts/bench/http.sh
#
# Builds release binaries, then for each connection mode (keep-alive: many
# requests per TCP connection; close: a new connection for every request)
# alternates the trackers (aquatic, opentracker, aquatic, opentracker, ...),
# RUNS runs each, every run with a freshly started tracker on its own
# 127.0.0.1 port, pinned to one core (taskset -c 0), and the load tester
# pinned to the other (taskset -c 1) for DURATION seconds. Per run it records
# responses/s (load tester), the tracker's CPU seconds over the load test
# (utime+stime from /proc/PID/stat), its peak RSS (VmHWM just before it is
# stopped), the kernel's TCP listen queue drops over the run (TcpExt
# ListenDrops in /proc/net/netstat; system-wide, so other traffic counts
# too), the failed requests the load tester saw (failure answers and other
# statuses, timeouts, invalid answers, requests dropped by a closed
# connection, connection errors) and the TCP connections it opened per 100
# answers (keep-alive: near 0 for a tracker that keeps connections open).
#
# opentracker does not keep connections alive: it answers "HTTP/1.1 200"
# without "Connection: close" and closes the connection after one answer
# (Debian's 0.0~git20210823.110868e-3). In keep-alive mode the load tester's
# next request on such a connection is lost (counted as dropped, about one
# per answer) before it reconnects: opentracker's keep-alive figures are
# then for a new connection per request with half the requests wasted, and
# are flagged in the report. The connection-close mode is the like-for-like
# comparison with opentracker.
#
# Then a memory phase (in MEM_MODE): the load tester is closed-loop,
# so in the runs above a faster tracker gets more announces, each from a new
# peer, and stores more peers: its peak RSS is not comparable. So the
# trackers are run again (alternating, MEM_RUNS each, fresh trackers) for
# MEM_DURATION seconds with the load tester capped at MEM_RATE requests/s
# (max_requests_per_second), the same offered load for both; per run it
# records the announce responses, responses/s, CPU seconds and peak RSS, and
# warns when a run got less than 95 % of MEM_RATE.
#
# Prints tables with medians and aquatic/opentracker ratios per mode, and the
# "memory at identical load" table, then all as markdown for
# scripts/bench/RESULTS.md. See /work/shared/BENCHMARKING.md (or
# shared/BENCHMARKING.md) for how to read the figures.
#
# Environment (defaults in brackets):
#   DURATION [30]          seconds of load per run
#   RUNS [3]               runs per tracker and mode
#   MODES ["keepalive close"]  connection modes to run, in this order:
#                          keepalive, close (a new connection per request,
#                          sent with "Connection: close"), oneshot (a new
#                          connection per request without that header, closed
#                          by the load tester once the answer is read: the
#                          one-shot client that does not say so), tls (HTTPS,
#                          a new connection per request with Connection:
#                          close, TLS sessions resumed), tls-full (the same,
#                          a full handshake every time). In the TLS modes
#                          opentracker runs behind hitch (Debian's TLS
#                          terminator, installed with apt-get when missing;
#                          one worker, pinned to the tracker's core), and its
#                          CPU seconds and peak RSS are opentracker's plus
#                          hitch's (all its processes)
#   TORRENTS [1000000]     number_of_torrents of the load tester (and the
#                          size of opentracker's whitelist)
#   LOAD_WORKERS [1]       load tester worker threads (all on LOAD_CPU)
#   CONNECTIONS [64]       load tester connections_per_worker: requests in
#                          flight (closed loop)
#   MEM_RUNS [1]           memory-phase runs per tracker (0: no memory phase)
#   MEM_MODE [close]       connection mode of the memory phase (close: both
#                          trackers get the same requests; see above)
#   MEM_DURATION [DURATION]  seconds of load per memory-phase run
#   MEM_RATE [10000]       requests/s of the memory phase: both trackers
#                          must sustain it on one core
#   TRACKER_CPU [0], LOAD_CPU [1]   cores for taskset
#   TRACKERS ["aquatic opentracker"]  which trackers to run, in this order
#   AQUATIC_REQUEST_WORKERS [1]  aquatic_http request_workers: 1 = one socket
#                         and one request thread; 0 = the socket worker
#                         answers announces itself (one thread)
#   AQUATIC_NETWORK [""]   more lines for aquatic's [network] section, e.g.
#                          'keep_alive = "always"' (the default,
#                          "when_asked", closes after the answer unless the
#                          request says Connection: keep-alive)
#   AQUATIC_ACCESS_LIST [off]  "allow": aquatic_http checks the same
#                          whitelist as opentracker does (parity of work)
#   SKIP_BUILD [0]         1: use the release binaries already in target/
#   WORK_DIR [mktemp -d]   configs, logs, results.tsv and memory.tsv of this
#                          session
#   OPENTRACKER [target/peers/opentracker/opentracker]  the upstream build
#   OPENTRACKER_DEBIAN [/usr/bin/opentracker]
#   AQUATIC, LOAD_TEST [target/release/...]  other binaries (e.g. to try the
#                          script out against a debug build: not a benchmark)
#
# Needs root (opentracker chroots and drops to nobody) and opentracker
# installed (scripts/install-test-deps.sh). Traffic stays on 127.0.0.1; every
# process started here is stopped by its PID, also on error or Ctrl-C.
# opentracker has no TLS: the TLS modes put hitch in front of it.

# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "$0")/common.sh"

DURATION="${DURATION:-30}"
RUNS="${RUNS:-3}"
MODES="${MODES:-keepalive close}"
MEM_RUNS="${MEM_RUNS:-1}"
MEM_DURATION="${MEM_DURATION:-$DURATION}"
MEM_RATE="${MEM_RATE:-10000}"
MEM_MODE="${MEM_MODE:-close}"
TORRENTS="${TORRENTS:-1000000}"
LOAD_WORKERS="${LOAD_WORKERS:-1}"
CONNECTIONS="${CONNECTIONS:-64}"
TRACKER_CPU="${TRACKER_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
TRACKERS="${TRACKERS:-aquatic opentracker}"
AQUATIC_ACCESS_LIST="${AQUATIC_ACCESS_LIST:-off}"
AQUATIC_REQUEST_WORKERS="${AQUATIC_REQUEST_WORKERS:-1}"
export AQUATIC_NETWORK="${AQUATIC_NETWORK:-}"
OPENTRACKER="${OPENTRACKER:-$repo_root/target/peers/opentracker/opentracker}"
OPENTRACKER_DEBIAN="${OPENTRACKER_DEBIAN:-/usr/bin/opentracker}"

AQUATIC="${AQUATIC:-$repo_root/target/release/aquatic_http}"
LOAD_TEST="${LOAD_TEST:-$repo_root/target/release/aquatic_http_load_test}"
bench=http

check_uints DURATION RUNS MEM_RUNS MEM_DURATION MEM_RATE TORRENTS LOAD_WORKERS CONNECTIONS TRACKER_CPU LOAD_CPU
[[ "$DURATION" -ge 1 && "$RUNS" -ge 1 && "$TORRENTS" -ge 1 && "$LOAD_WORKERS" -ge 1 && "$CONNECTIONS" -ge 1 ]] ||
    die "DURATION, RUNS, TORRENTS, LOAD_WORKERS and CONNECTIONS must be at least 1"
check_mem_and_access_list
[[ -n "${TRACKERS// /}" ]] || die "TRACKERS is empty"
check_trackers
[[ -n "${MODES// /}" ]] || die "MODES is empty"
tls_wanted=0
for m in $MODES; do
    [[ "$m" == keepalive || "$m" == close || "$m" == oneshot || "$m" == tls || "$m" == tls-full ]] ||
        die "unknown mode '$m' in MODES (keepalive, close, oneshot, tls, tls-full)"
    [[ "$m" == tls* ]] && tls_wanted=1
done
[[ " keepalive close oneshot tls tls-full " == *" $MEM_MODE "* ]] ||
    die "MEM_MODE must be keepalive, close, oneshot, tls or tls-full"
[[ "$MEM_MODE" == tls* ]] && tls_wanted=1
check_host

make_work_dir

# ------------------------------------------------------------ cleanup

install_cleanup

# ------------------------------------------------------------ helpers

listen_drops() {
    # TcpExt ListenDrops (SYNs or connections dropped at a listener, which
    # includes ListenOverflows: accept queue full), system-wide.
    awk '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) n[i] = $i; h = 1 }
                      else { for (i = 1; i <= NF; i++) if (n[i] == "ListenDrops") v = $i } }
         END { print v + 0 }' /proc/net/netstat
}

start_hitch() {
    # start_hitch TAG PORT BACKEND: hitch (one worker, pinned to
    # TRACKER_CPU) terminating TLS on PORT for the plain tracker on BACKEND;
    # sets hitch_pid and helper_pids (hitch's processes, whose CPU and
    # memory count with the tracker's).
    local tag="$1" port="$2" backend="$3"
    local hlog="$work/hitch-$tag.log"
    taskset -c "$TRACKER_CPU" hitch --frontend="[127.0.0.1]:$port" --backend="[127.0.0.1]:$backend" \
        --workers=1 --user=nobody --tls-protos="TLSv1.2 TLSv1.3" "$work/tls/hitch.pem" >"$hlog" 2>&1 &
    hitch_pid=$!
    wait_serving hitch "$hitch_pid" "$hlog" "listen on" tcp_listening "$port" 100
    probe_tls=1 probe "$port" "$probe_first" || { cat "$hlog" >&2; die "no announce answer through hitch on $port"; }
    helper_pids="$hitch_pid $(pgrep -P "$hitch_pid" | tr '\n' ' ')"
}

make_tls_files() {
    # A self-signed certificate for localhost in $work/tls: cert.pem and
    # key.pem for aquatic_http, both in hitch.pem for hitch.
    mkdir -p "$work/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost -keyout "$work/tls/key.pem" -out "$work/tls/cert.pem" 2>/dev/null ||
        die "openssl could not make a certificate"
    cat "$work/tls/key.pem" "$work/tls/cert.pem" >"$work/tls/hitch.pem"
    chmod 644 "$work/tls/"*.pem
}

# for start_tracker (common.sh)
tracker_ready() { tcp_listening "$@"; }
ready_what='listen on TCP'

# for run_load_test (common.sh): listen drops over the load test
before_load() { d0="$(listen_drops)"; }
after_load() { d1="$(listen_drops)"; }

probe() {
    # probe PORT HASH: announce (HTTP, one connection each) until the
    # tracker answers 200 with a bencoded announce answer, for at most 30 s.
    # opentracker answers announces for hashes not (yet) loaded from its
    # whitelist with a failure reason, so this also waits for the
    # whitelist. The probe's peer is then removed with a `stopped` announce.
    # Over TLS (any certificate) while probe_tls is 1.
    timeout 40 "$PY" - "$1" "$2" "${probe_tls:-0}" <<'EOF'
import os, socket, ssl, sys, time, urllib.parse
port, info_hash, tls = int(sys.argv[1]), bytes.fromhex(sys.argv[2]), sys.argv[3] == "1"
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
peer_id = b"-PROBE0-" + os.urandom(12)
end = time.monotonic() + 30
q = urllib.parse.quote_from_bytes

def announce(event):
    query = (f"info_hash={q(info_hash, safe='')}&peer_id={q(peer_id, safe='')}&port=6881&uploaded=0"
             f"&downloaded=0&left=0&compact=1&numwant=0&event={event}")
    with socket.create_connection(("127.0.0.1", port), timeout=2) as plain:
        s = context.wrap_socket(plain, server_hostname="localhost") if tls else plain
        s.sendall(f"GET /announce?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                lengths = [l.split(b":", 1)[1] for l in head.split(b"\r\n")[1:] if l.lower().startswith(b"content-length:")]
                if lengths and len(body) >= int(lengths[0]):
                    break
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    status = head.split(b"\r\n", 1)[0]
    return status, body

last = "nothing"
while time.monotonic() < end:
    try:
        status, body = announce("started")
        if b" 200 " in status + b" " and body.startswith(b"d") and b"failure reason" not in body and b"peers" in body:
            try:
                announce("stopped")
            except OSError:
                pass
            sys.exit(0)
        last = f"{status!r} {body[:120]!r}"
    except OSError as e:
        last = str(e)
    time.sleep(0.1)
sys.exit(f"no announce answer from 127.0.0.1:{port} for {info_hash.hex()} within 30 s (last: {last})")
EOF
}

# ------------------------------------------------------------ build

build_and_check_binaries aquatic_http aquatic_http_load_test
# The config keys written below: fail now if the load tester has renamed one.
"$LOAD_TEST" -p >"$work/load-test-defaults.toml"
for key in server_address workers connections_per_worker keep_alive connection_header tls tls_resumption duration summarize_every \
    max_requests_per_second number_of_torrents info_hash_file; do
    grep -Eq "^$key = " "$work/load-test-defaults.toml" ||
        die "$LOAD_TEST -p has no '$key': this script needs updating (defaults in $work/load-test-defaults.toml)"
done

# ------------------------------------------------------------ info hashes

make_info_hashes
hitch_pid="" helper_pids=""
if [[ "$tls_wanted" == 1 ]]; then
    if ! command -v hitch >/dev/null; then
        log "installing hitch (apt-get) for the TLS modes"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q hitch >"$work/apt-hitch.log" 2>&1 ||
            die "cannot install hitch (log: $work/apt-hitch.log)"
    fi
    make_tls_files
fi

# ------------------------------------------------------------ one run

results="$work/results.tsv"
mem_results="$work/memory.tsv"
for f in "$results" "$mem_results"; do
    printf 'mode\ttracker\trun\tresponses_per_s\ttracker_cpu_s\twall_s\trss_kib\tlisten_drops\terrors\ttimeouts\tinvalid\tdropped\tconnection_errors\ttracker_closes\tconnections_opened\tload_tester_cpu_s\tannounces\tresponses\n' >"$f"
done

run_one() {
    # run_one NAME RUN MODE [PHASE]: PHASE "throughput" (the default: closed
    # loop for DURATION s, a row in results.tsv) or "memory" (at most
    # MEM_RATE requests/s for MEM_DURATION s, a row in memory.tsv; files
    # tagged mem-RUN).
    local name="$1" run="$2" mode="$3" phase="${4:-throughput}" port
    local tag="$mode-$run" duration="$DURATION" out="$results" what="$mode run $run" cap="" cap_line=""
    if [[ "$phase" == memory ]]; then
        tag="mem-$mode-$run" duration="$MEM_DURATION" out="$mem_results" what="$mode memory run $run"
        cap=" at $MEM_RATE requests/s" cap_line="max_requests_per_second = $MEM_RATE"
    fi
    local keep_alive=true close_header=true tls=false resumption=true
    [[ "$mode" != keepalive ]] && keep_alive=false
    [[ "$mode" == oneshot ]] && close_header=false
    [[ "$mode" == tls* ]] && tls=true
    [[ "$mode" == tls-full ]] && resumption=false
    port="$(free_port)"
    log "$what: $name on 127.0.0.1:$port (cpu $TRACKER_CPU), load tester on cpu $LOAD_CPU for ${duration}s$cap"
    if [[ "$tls" == false ]]; then
        start_tracker "$name" "$tag" "$port"
    elif [[ "$name" == aquatic* ]]; then
        local network_before="$AQUATIC_NETWORK"
        AQUATIC_NETWORK="$network_before"$'\n'"tls_certificate_path = \"$work/tls/cert.pem\""$'\n'"tls_private_key_path = \"$work/tls/key.pem\""
        probe_tls=1 start_tracker "$name" "$tag" "$port"
        AQUATIC_NETWORK="$network_before"
    else
        # opentracker on a plain port, hitch in front of it on $port.
        local backend
        backend="$(free_port)"
        start_tracker "$name" "$tag" "$backend"
        start_hitch "$tag" "$port" "$backend"
    fi

    local lcfg="$work/load-$name-$tag.toml" lout="$work/load-$name-$tag.out"
    load_config "$port" "$LOAD_WORKERS" "$duration" "connections_per_worker = $CONNECTIONS" "keep_alive = $keep_alive" \
        "connection_header = $close_header" "tls = $tls" "tls_resumption = $resumption" >"$lcfg" <<EOF
$cap_line

[requests]
number_of_torrents = $TORRENTS
EOF
    local t0 t1 w0 w1 l0 l1 d0 d1
    run_load_test "$name" "$tag" "$lcfg" "$lout" "$duration"

    local rss pid
    rss="$(peak_rss_kib "$tracker_pid")"
    for pid in $helper_pids; do
        rss=$((rss + $(peak_rss_kib "$pid")))
    done
    stop_pid "$hitch_pid"
    hitch_pid="" helper_pids=""
    stop_pid "$tracker_pid"
    tracker_pid=""

    output_py "$lout" "$mode" "$name" "$run" "$t0" "$t1" "$CLK_TCK" "$w0" "$w1" "$rss" "$((d1 - d0))" "$l0" "$l1" >>"$out" <<'EOF'
import re, sys
out, mode, name, run, t0, t1, tck, w0, w1, rss, drops, l0, l1 = sys.argv[1:]
rps = announces = None
totals = {}
for line, j in output_lines(out):
    if j is not None:
        rps = j.get("responses_per_second", rps)
        announces = j.get("announce_responses_total", announces)
        if "timeouts" in j:
            totals.setdefault("timeouts", j["timeouts"])
    if line.startswith("totals over "):
        # "... (announce A, scrape S, failure F, other status O), R requests
        # sent, T timeouts, I invalid, D dropped, C connections opened, ..."
        for key, pattern in [
            ("responses", r"^totals over [0-9.]+ s: (\d+) responses"),
            ("failure", r"failure (\d+)"),
            ("other_status", r"other status (\d+)"),
            ("timeouts", r"(\d+) timeouts"),
            ("invalid", r"(\d+) invalid"),
            ("dropped", r"(\d+) dropped"),
            ("connection_errors", r"(\d+) connection errors"),
            ("tracker_closes", r"(\d+) closed by tracker"),
            ("connections_opened", r"(\d+) connections opened"),
        ]:
            m = re.search(pattern, line)
            if m:
                totals[key] = int(m.group(1))
    rps, announces = text_figures(line, rps, announces)
if rps is None:
    sys.exit(f"no responses per second in {out}")
cpu, wall = cpu_and_wall(t0, t1, tck, w0, w1)
def opt(key):
    return totals.get(key, "")
errors = ""
if "failure" in totals or "other_status" in totals:
    errors = totals.get("failure", 0) + totals.get("other_status", 0)
load_cpu = float(l1) - float(l0)
print("\t".join(str(x) for x in [
    mode, name, run, rps, f"{cpu:.2f}", f"{wall:.2f}", rss, drops, errors, opt("timeouts"), opt("invalid"),
    opt("dropped"), opt("connection_errors"), opt("tracker_closes"), opt("connections_opened"), f"{load_cpu:.2f}",
    "" if announces is None else announces, opt("responses"),
]))
EOF
    local row rps
    row="$(tail -n 1 "$out")"
    rps="$(cut -f4 <<<"$row")"
    log "$what: $name: $rps responses/s, $(cut -f5 <<<"$row") tracker CPU s, peak RSS $rss KiB, listen drops $((d1 - d0)), failure answers '$(cut -f9 <<<"$row")', timeouts '$(cut -f10 <<<"$row")', dropped '$(cut -f12 <<<"$row")', connections opened '$(cut -f15 <<<"$row")'"
    warn_mem_rate "$phase" "$name" "$rps"
}

# ------------------------------------------------------------ runs

log "work dir: $work"
for mode in $MODES; do
    alternate "$RUNS" run_one "$mode"
done
# Memory at identical load: the same request rate for every tracker.
alternate "$MEM_RUNS" run_one "$MEM_MODE" memory

# ------------------------------------------------------------ report

report_info aquatic_http aquatic_http aquatic_common aquatic_http_protocol
load_build=""
[[ "$LOAD_TEST" == "$repo_root/target/release/aquatic_http_load_test" ]] || load_build=" (binary $LOAD_TEST)"

"$PY" - "$results" "$mem_results" <<EOF
import os, statistics, sys

MODE_TITLE = {"keepalive": "keep-alive", "close": "connection close",
              "oneshot": "one request per connection, no Connection: close",
              "tls": "TLS, connection close, sessions resumed (opentracker behind hitch)",
              "tls-full": "TLS, connection close, a full handshake each (opentracker behind hitch)"}

$(report_py_helpers)

def num(v):
    return int(v) if v not in ("", None) else None

def parse_row(r):
    parse_run(r)
    r["drops"] = int(r["listen_drops"])
    for k in ("errors", "timeouts", "invalid", "dropped", "connection_errors", "tracker_closes", "connections_opened",
              "responses"):
        r[k] = num(r.get(k))
    r["problems"] = sum(r[k] or 0 for k in ("errors", "timeouts", "invalid", "dropped", "connection_errors"))
    # TCP connections opened per 100 answers
    responses = r["responses"] if r["responses"] is not None else r["rps"] * r["wall"]
    r["conn_per_100"] = 100.0 * (r["connections_opened"] or 0) / responses if responses > 0 else 0.0
    return r

rows = load(sys.argv[1])
mem_rows = load(sys.argv[2])

modes = ordered(r["mode"] for r in rows)
names = ordered(r["tracker"] for r in rows)
MED_KEYS = ("rps", "cpu", "busy", "load_busy", "per_cpu", "rss", "drops", "problems", "conn_per_100")
med = {}
for m in modes:
    for n in names:
        rs = [r for r in rows if r["mode"] == m and r["tracker"] == n]
        if rs:
            med[m, n] = {k: statistics.median(r[k] for r in rs) for k in MED_KEYS}
            med[m, n]["rss_max"] = max(r["rss"] for r in rs)

cols = ["tracker", "run", "responses/s", "tracker CPU s", "tracker core busy %", "load tester busy %",
        "responses per CPU-s", "peak RSS MiB", "listen drops", "failed requests", "connections per 100 answers"]
def row_cells(r, run):
    return [r["tracker"], run, f"{r['rps']:.0f}", f"{r['cpu']:.2f}", f"{r['busy']:.0f}", f"{r['load_busy']:.0f}",
            f"{r['per_cpu']:.0f}", mib(r["rss"]), f"{r['drops']:.0f}", f"{r['problems']:.0f}", f"{r['conn_per_100']:.0f}"]

tables = {}
ratios = {}
for m in modes:
    t = [row_cells(r, r["run"]) for r in rows if r["mode"] == m]
    for n in names:
        if (m, n) in med:
            t.append(row_cells(dict(med[m, n], tracker=n), "median"))
    tables[m] = t
    if (m, "aquatic") in med and (m, "opentracker") in med:
        a, o = med[m, "aquatic"], med[m, "opentracker"]
        ratios[m] = [
            ("median responses/s", ratio(a["rps"], o["rps"])),
            ("median responses per tracker CPU-second", ratio(a["per_cpu"], o["per_cpu"])),
            ("median peak RSS", ratio(a["rss"], o["rss"])),
        ]

for m in modes:
    print()
    print(f"{MODE_TITLE[m]}:")
    print()
    plain(cols, tables[m])
    print()
    for n in names:
        if (m, n) in med:
            print(f"{n}: median peak RSS {mib(med[m, n]['rss'])} MiB (max {mib(med[m, n]['rss_max'])} MiB)")
    for label, v in ratios.get(m, []):
        print(f"aquatic/opentracker, {MODE_TITLE[m]}, {label}: {v}")

notes = []
no_keepalive = []
if "keepalive" in modes:
    for n in names:
        if ("keepalive", n) in med and med["keepalive", n]["conn_per_100"] >= 50:
            no_keepalive.append(n)
            notes.append(f"{n} did not keep connections alive: in keep-alive mode the load tester opened "
                         f"{med['keepalive', n]['conn_per_100']:.0f} connections per 100 answers, so its keep-alive "
                         "figures are for a new connection per request (and requests sent on connections it had "
                         "closed count as failed, dropped); compare it in connection-close mode.")
bad = ordered(f"{r['tracker']} ({MODE_TITLE[r['mode']]})" for r in rows
              if r["problems"] and not (r["mode"] == "keepalive" and r["tracker"] in no_keepalive
                                        and r["problems"] == (r["dropped"] or 0)))
if bad:
    notes.append("Failed requests (failure answers or other statuses, timeouts, invalid answers, dropped requests, "
                 "connection errors) from " + ", ".join(bad) + " (see the load tester's totals line in the work "
                 "dir): failure answers from opentracker mean info hashes missing from its whitelist; those runs "
                 "are not comparable.")
notes += [note for note in (busy_note(f"{n} ({MODE_TITLE[m]})", v, "CONNECTIONS") for (m, n), v in med.items())
          if note]
if any(v["drops"] for v in med.values()):
    notes.append("Listen drops are the system-wide TcpExt ListenDrops over the run: connections the kernel "
                 "dropped at a full accept queue (or other traffic on this machine).")
for note in notes:
    print()
    print("note: " + note)

# memory at identical load
mem_rate, mem_duration, mem_runs = $MEM_RATE, $MEM_DURATION, $MEM_RUNS
mem_title = f"memory at identical load ({MODE_TITLE['$MEM_MODE']}, {mem_rate} req/s for {mem_duration} s)"
mem_keys = ("announces", "rps", "cpu", "busy", "load_busy", "rss", "drops", "problems")
mem_cols = ["tracker", "run", "announce responses", "responses/s", "tracker CPU s", "tracker core busy %",
            "load tester busy %", "peak RSS MiB", "listen drops", "failed requests"]
def mem_cells(r, run):
    return [r["tracker"], run, f"{r['announces']:.0f}", f"{r['rps']:.0f}", f"{r['cpu']:.2f}", f"{r['busy']:.0f}",
            f"{r['load_busy']:.0f}", mib(r["rss"]), f"{r['drops']:.0f}", f"{r['problems']:.0f}"]
mem_table, mem_ratios, mem_warnings = mem_phase(mem_rows, mem_keys, mem_cells, mem_runs, mem_rate)
print_mem_plain(mem_title, mem_cols, mem_table, mem_ratios, mem_warnings)

# markdown
md_start("## HTTP: aquatic_http vs opentracker ($(date -u +%Y-%m-%d))")
print("- Machine: $ncpu cores ($cpu_model), kernel $(uname -r).")
print("- aquatic_http $aquatic_rev ($aquatic_build, socket_workers = 1, request_workers = $AQUATIC_REQUEST_WORKERS, access list $AQUATIC_ACCESS_LIST"
      + (", [network] " + os.environ["AQUATIC_NETWORK"] if os.environ.get("AQUATIC_NETWORK") else "") + "); "
      "opentracker $ot_version; opentracker-debian (if run): Debian's $ot_debian_version, whitelist of the load "
      "tester's $TORRENTS info hashes.")
print("- Tracker pinned to CPU $TRACKER_CPU, aquatic_http_load_test$load_build to CPU $LOAD_CPU ($LOAD_WORKERS worker(s) x "
      "$CONNECTIONS connections, $TORRENTS torrents, other settings default); ${DURATION} s per run, $RUNS runs each "
      "per mode, alternating; every run with a freshly started tracker. Keep-alive: keep_alive = true; connection "
      "close: keep_alive = false (a new TCP connection per request).")
print("- Command: \`DURATION=$DURATION RUNS=$RUNS MODES=\"$MODES\" MEM_RUNS=$MEM_RUNS MEM_MODE=$MEM_MODE MEM_DURATION=$MEM_DURATION "
      "MEM_RATE=$MEM_RATE TORRENTS=$TORRENTS LOAD_WORKERS=$LOAD_WORKERS CONNECTIONS=$CONNECTIONS "
      "AQUATIC_REQUEST_WORKERS=$AQUATIC_REQUEST_WORKERS AQUATIC_ACCESS_LIST=$AQUATIC_ACCESS_LIST "
      + ("AQUATIC_NETWORK='" + os.environ["AQUATIC_NETWORK"] + "' " if os.environ.get("AQUATIC_NETWORK") else "")
      + "scripts/bench/http.sh\`")
print()
for m in modes:
    print(f"### {MODE_TITLE[m][0].upper() + MODE_TITLE[m][1:]}")
    print()
    md_table(cols, tables[m])
    md_ratios(ratios.get(m))
rss_note = (f"Peak RSS is VmHWM after {int($DURATION)} s runs at this load: compare it only between runs of the same "
            "duration, mode and load. Responses per tracker CPU-second = responses over the run / tracker CPU time "
            "(utime + stime) over the run. Failed requests: failure answers and other statuses, timeouts, invalid "
            "answers, requests dropped by a closed connection and connection errors, as the load tester counts them. "
            "Connections per 100 answers: TCP connections the load tester opened (100 in connection-close mode; "
            "near 0 with keep-alive, when the tracker keeps connections open).")
if "$AQUATIC_ACCESS_LIST" == "off" and "opentracker-debian" in names:
    rss_note += (" opentracker-debian's peak RSS includes its whitelist of $TORRENTS info hashes, which aquatic (access list "
                 "off) does not load; AQUATIC_ACCESS_LIST=allow gives both the same list.")
if mem_rows:
    rss_note += (" These runs are closed-loop: a faster tracker gets more announces, each from a new peer, so its "
                 "peak RSS above is at a higher load; see below for peak RSS at identical load.")
print(rss_note)
for note in notes:
    print()
    print(note)
print()
if mem_rows:
    print("### " + mem_title[0].upper() + mem_title[1:])
    print()
    print(f"After the runs above, each tracker again ({mem_runs} run(s) each, alternating, freshly started), in "
          f"{MODE_TITLE['$MEM_MODE']} mode with the load tester capped at {mem_rate} requests/s (max_requests_per_second; same "
          f"{int($LOAD_WORKERS)} worker(s) x {int($CONNECTIONS)} connections and torrents) for {mem_duration} s: the "
          "same offered load for both, so each tracker that sustains the rate gets about the same announces (each "
          "from a new peer). Peak RSS is VmHWM at the end of the run.")
    print()
    print_mem_md(mem_cols, mem_table, mem_ratios, mem_warnings)
EOF
log "done; configs, logs, results.tsv and memory.tsv in $work"
