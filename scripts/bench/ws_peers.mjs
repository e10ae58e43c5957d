// WebSocket peers for scripts/bench/ws.sh: a readiness probe, and idle
// connected peers for the memory phase. Not a load test (that is
// aquatic_ws_load_test).
//
// usage:
//   node ws_peers.mjs probe --modules DIR --port PORT
//   node ws_peers.mjs hold  --modules DIR --port PORT --peers N --torrents T
//                           [--concurrency C] [--hold-s S]
//
// --modules: a directory with node_modules/ws (scripts/real_clients/webtorrent:
// bittorrent-tracker depends on ws). Connections go to ws://127.0.0.1:PORT/
// only.
//
// probe: one connection announces (event "started", no offers) to a probe
// torrent until a tracker answers with an announce reply for it, for at
// most 30 s; exit 0 when it did, 1 otherwise.
//
// hold: opens N connections, at most C (default 64) at a time connecting
// or waiting for their reply (Node's accept queue is 511 long: thousands
// opened at once overflow it). Each is a peer of its own (peer id from its
// index) that announces once (event "started", left 0, no offers,
// numwant 0) to torrent (index mod T) and then stays idle. A connection
// without its reply within 10 s, or that fails, is closed and counted as
// failed (no retry). When every connection has its reply or failed (or
// after 300 s), it prints one JSON line {"held", "failed", "seconds"}; it
// then keeps the connections open until SIGTERM or SIGINT (or --hold-s,
// default 600, seconds in all), prints {"closed_while_held"} (connections
// the tracker closed after their reply) and exits 0.

import { createRequire } from 'node:module'
import path from 'node:path'
import { parseArgs } from 'node:util'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    modules: { type: 'string' },
    port: { type: 'string' },
    peers: { type: 'string', default: '1000' },
    torrents: { type: 'string', default: '100' },
    concurrency: { type: 'string', default: '64' },
    'hold-s': { type: 'string', default: '600' }
  }
})

function die (msg) {
  console.error(`ws_peers: ${msg}`)
  process.exit(2)
}

const mode = positionals[0]
if ((mode !== 'probe' && mode !== 'hold') || !values.modules || !values.port) {
  die('usage: node ws_peers.mjs probe|hold --modules DIR --port PORT [--peers N --torrents T --concurrency C --hold-s S]')
}
const intArg = (name, min, max) => {
  const v = Number(values[name])
  if (!Number.isInteger(v) || v < min || v > max) die(`--${name} must be an integer from ${min} to ${max}`)
  return v
}
const port = intArg('port', 1, 65535)
const WebSocket = createRequire(path.join(path.resolve(values.modules), 'package.json'))('ws')
const url = `ws://127.0.0.1:${port}/`

// 20 characters U+0000..U+00FF: the WebTorrent wire form of a 20-byte id.
const id20 = (prefix, n) => prefix + String(n).padStart(20 - prefix.length, '0')

function announce (ws, infoHash, peerId) {
  ws.send(JSON.stringify({
    action: 'announce',
    info_hash: infoHash,
    peer_id: peerId,
    event: 'started',
    uploaded: 0,
    downloaded: 0,
    left: 0,
    numwant: 0,
    offers: []
  }))
}

function isReply (data, infoHash) {
  try {
    const m = JSON.parse(data.toString())
    return m.action === 'announce' && m.info_hash === infoHash && m['failure reason'] === undefined &&
      m.offer === undefined && m.answer === undefined
  } catch {
    return false
  }
}

if (mode === 'probe') {
  const infoHash = id20('wsbench-probe-', 0)
  const deadline = Date.now() + 30000
  let last = 'nothing'
  const attempt = () => {
    if (Date.now() > deadline) {
      console.error(`ws_peers: no announce reply from ${url} within 30 s (last: ${last})`)
      process.exit(1)
    }
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 2000 })
    const timer = setTimeout(() => { last = 'no reply within 2 s'; ws.terminate() }, 2000)
    let ok = false
    ws.on('open', () => announce(ws, infoHash, id20('-WSPROBE-', process.pid)))
    ws.on('message', (data) => {
      if (isReply(data, infoHash)) {
        ok = true
        ws.close()
      } else {
        last = data.toString().slice(0, 120)
      }
    })
    ws.on('error', (err) => { last = err.message })
    ws.on('close', () => {
      clearTimeout(timer)
      if (ok) process.exit(0)
      setTimeout(attempt, 100)
    })
  }
  attempt()
} else {
  const peers = intArg('peers', 1, 1000000)
  const torrents = intArg('torrents', 1, 1000000)
  const concurrency = intArg('concurrency', 1, 10000)
  const holdS = intArg('hold-s', 1, 86400)
  const start = Date.now()
  const sockets = []
  let next = 0
  let pending = 0
  let held = 0
  let failed = 0
  let reported = false
  let closedWhileHeld = 0
  let stopping = false

  const report = () => {
    if (reported) return
    reported = true
    console.log(JSON.stringify({ held, failed, seconds: (Date.now() - start) / 1000 }))
  }
  const stop = () => {
    if (stopping) return
    stopping = true
    report()
    console.log(JSON.stringify({ closed_while_held: closedWhileHeld }))
    for (const ws of sockets) ws.terminate()
    process.exit(0)
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  setTimeout(report, 300000).unref()
  setTimeout(stop, holdS * 1000)

  const openOne = (i) => {
    const infoHash = id20('wsbench-torrent-', i % torrents)
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 10000 })
    let state = 'waiting'
    const settle = (ok) => {
      if (state !== 'waiting') return
      clearTimeout(timer)
      state = ok ? 'held' : 'failed'
      if (ok) held++
      else {
        failed++
        ws.terminate()
      }
      pending--
      pump()
    }
    const timer = setTimeout(() => settle(false), 10000)
    ws.on('open', () => announce(ws, infoHash, id20('-WSBENCH-', i)))
    ws.on('message', (data) => { if (state === 'waiting' && isReply(data, infoHash)) settle(true) })
    ws.on('error', () => settle(false))
    ws.on('close', () => {
      if (state === 'held' && !stopping) closedWhileHeld++
      settle(false)
    })
    sockets.push(ws)
  }
  const pump = () => {
    while (pending < concurrency && next < peers) {
      pending++
      openOne(next++)
    }
    if (pending === 0 && next >= peers) report()
  }
  pump()
}
