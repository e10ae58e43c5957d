// The reference WebTorrent tracker (npm bittorrent-tracker), WebSocket only.
//
// usage: node reference_tracker.mjs --host ADDR --port PORT [--interval-ms MS] [--quiet]
//
// The package's own CLI (node_modules/.bin/bittorrent-tracker --ws) cannot be
// used here: it imports the package's client too, whose WebRTC polyfill needs
// the native node-datachannel addon, which is not built (.npmrc has
// ignore-scripts=true, and its install script would download a binary from
// outside the npm registry). Its server module is plain JavaScript, so this
// starts the same server the CLI would, with HTTP and UDP off.
//
// --interval-ms is the server's announce interval; it tells WebSocket clients
// a fifth of it (in seconds), as the CLI does. The default is the CLI's
// (10 min, so clients are told 120 s).
//
// It prints `listening on ws://ADDR:PORT` once the socket is bound, one line
// per swarm event (not with --quiet: for benchmarks, scripts/bench/ws.sh,
// where a line per announce would cost the tracker CPU time; warnings and
// errors are still printed), and exits on SIGTERM or SIGINT.

import { parseArgs } from 'node:util'
import Server from 'bittorrent-tracker/server'

const { values } = parseArgs({
  options: {
    host: { type: 'string' },
    port: { type: 'string' },
    'interval-ms': { type: 'string', default: String(10 * 60 * 1000) },
    quiet: { type: 'boolean', default: false }
  }
})
if (!values.host || !values.port) {
  console.error('usage: node reference_tracker.mjs --host ADDR --port PORT [--interval-ms MS] [--quiet]')
  process.exit(2)
}

const log = (msg) => console.log(`${new Date().toISOString()} ${msg}`)

const server = new Server({
  http: false,
  udp: false,
  ws: true,
  stats: false,
  interval: Number(values['interval-ms'])
})

server.on('error', (err) => {
  log(`ERROR: ${err.message}`)
  process.exit(1)
})
server.on('warning', (err) => log(`warning: ${err.message}`))
if (!values.quiet) {
  server.on('start', (addr) => log(`start: ${addr}`))
  server.on('complete', (addr) => log(`complete: ${addr}`))
  server.on('update', (addr) => log(`update: ${addr}`))
  server.on('stop', (addr) => log(`stop: ${addr}`))
}

server.listen(Number(values.port), values.host, () => {
  const { address, port } = server.ws.address()
  log(`listening on ws://${address}:${port}`)
})

let closing = false
function shutdown (signal) {
  if (closing) return
  closing = true
  log(`${signal}: closing`)
  // Bounded: exit even if a connection keeps the server open.
  setTimeout(() => process.exit(0), 2000).unref()
  server.close(() => process.exit(0))
}
process.on('SIGTERM', () => shutdown('SIGTERM'))
process.on('SIGINT', () => shutdown('SIGINT'))
