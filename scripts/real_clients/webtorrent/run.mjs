// Real-browser WebTorrent test: 1 seeder + N downloaders, each a separate
// headless Chromium process running the webtorrent browser bundle, find each
// other through the WebSocket tracker TRACKER_URL and move a random file over
// WebRTC; every download must be byte for byte the seeded file.
//
// usage: node run.mjs TRACKER_URL [DOWNLOADERS=2] [TIMEOUT_SECONDS=120]
//                     [--wire-log FILE] [--linger SECONDS]
//
// Run it inside the network namespace made by ../webtorrent_ws.sh (WebRTC does
// not use the loopback interface): TRACKER_URL's host must be an address of a
// non-loopback interface there; the page server binds to it too.
//
// Checks (the last line says how many passed):
//   1. the seeder's announce got a tracker reply (complete/incomplete/interval);
//   2..N+1. each downloader completed, SHA-256 equal to the seeded file;
//   N+2. a scrape (sent from the seeder's page as the bittorrent-tracker client
//        sends it) counts N+1 seeders and 0 leechers;
//   N+3. after downloader1 stops its torrent (a `stopped` announce), a scrape
//        counts N seeders;
//   N+4. nothing went anywhere but the test's own servers: every WebSocket
//        went to TRACKER_URL, every HTTP request to the page server, every
//        RTCPeerConnection had no ICE servers, and every ICE candidate in the
//        offers and answers was an address of this host.
//
// --wire-log FILE writes every WebSocket frame the browsers sent and received
// (and each RTCPeerConnection config) as JSON lines. --linger SECONDS keeps
// the swarm running that long after the downloads (to see periodic announces).

import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium'
const FILE_SIZE = 1024 * 1024 + 12345 // not a whole number of pieces
const FILE_NAME = 'aquatic-webtorrent-test.bin'

// ---- arguments --------------------------------------------------------------

function usage (msg) {
  if (msg) console.error(`webtorrent: ${msg}`)
  console.error('usage: node run.mjs TRACKER_URL [DOWNLOADERS=2] [TIMEOUT_SECONDS=120] [--wire-log FILE] [--linger SECONDS]')
  process.exit(2)
}

const positional = []
let wireLogPath = null
let linger = 0
for (let i = 2; i < process.argv.length; i++) {
  const arg = process.argv[i]
  if (arg === '--wire-log') {
    wireLogPath = process.argv[++i]
    if (!wireLogPath) usage('--wire-log needs a file')
  } else if (arg === '--linger') {
    linger = Number(process.argv[++i])
    if (!Number.isFinite(linger) || linger < 0) usage('--linger needs a number of seconds')
  } else if (arg === '-h' || arg === '--help') {
    usage()
  } else if (arg.startsWith('--')) {
    usage(`unknown option ${arg}`)
  } else {
    positional.push(arg)
  }
}
if (positional.length < 1 || positional.length > 3) usage()

const trackerUrl = positional[0]
const downloaders = positional[1] === undefined ? 2 : Number(positional[1])
const timeoutSeconds = positional[2] === undefined ? 120 : Number(positional[2])
let trackerHost
try {
  const u = new URL(trackerUrl)
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new Error('not ws:// or wss://')
  trackerHost = u.hostname.replace(/^\[|\]$/g, '')
} catch (err) {
  usage(`bad TRACKER_URL ${trackerUrl}: ${err.message}`)
}
if (!Number.isInteger(downloaders) || downloaders < 1 || downloaders > 8) usage('DOWNLOADERS must be 1..8')
if (!Number.isFinite(timeoutSeconds) || timeoutSeconds < 10) usage('TIMEOUT_SECONDS must be at least 10')

// ---- output and time limits -------------------------------------------------

const started = Date.now()
const deadline = started + timeoutSeconds * 1000

function log (msg) {
  const t = ((Date.now() - started) / 1000).toFixed(1).padStart(6)
  console.log(`[${t}s] ${msg}`)
}

function remaining () {
  return Math.max(0, deadline - Date.now())
}

// Rejects after ms with "timeout: what".
function withTimeout (promise, ms, what) {
  let timer
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout (${(ms / 1000).toFixed(0)} s): ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

// The same, but never beyond the test's deadline.
function bounded (promise, ms, what) {
  return withTimeout(promise, Math.min(ms, remaining()), what)
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

const checks = []
function check (ok, what, detail) {
  checks.push({ ok, what })
  log(`${ok ? 'PASS' : 'FAIL'} ${what}${detail ? `: ${detail}` : ''}`)
}

// ---- page server --------------------------------------------------------------

const bundlePath = path.join(HERE, 'node_modules', 'webtorrent', 'dist', 'webtorrent.min.js')
if (!fs.existsSync(bundlePath)) {
  console.error(`webtorrent: no ${bundlePath}; run npm ci in ${HERE}`)
  process.exit(2)
}
const pageFiles = {
  '/': {
    type: 'text/html; charset=utf-8',
    body: Buffer.from('<!doctype html>\n<meta charset="utf-8">\n<title>aquatic WebTorrent test</title>\n' +
      '<script type="module" src="/page.mjs"></script>\n')
  },
  '/page.mjs': { type: 'text/javascript', body: fs.readFileSync(path.join(HERE, 'page.mjs')) },
  '/webtorrent.min.js': { type: 'text/javascript', body: fs.readFileSync(bundlePath) }
}

function startPageServer () {
  const server = http.createServer((req, res) => {
    const file = pageFiles[new URL(req.url, 'http://x').pathname]
    if (req.url === '/favicon.ico') {
      res.writeHead(204)
      res.end()
    } else if (req.method === 'GET' && file) {
      res.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-store' })
      res.end(file.body)
    } else {
      log(`page server: 404 ${req.method} ${req.url}`)
      res.writeHead(404)
      res.end()
    }
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, trackerHost, () => resolve(server))
  })
}

// ---- browsers -----------------------------------------------------------------

// Chromium's own command line, complete (ignoreDefaultArgs: Playwright's
// defaults would add a --disable-features of their own, and with two the
// last one wins).
function chromiumArgs (userDataDir, pageOrigin) {
  return [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    `--user-data-dir=${userDataDir}`,
    // The page must be a secure context (crypto.subtle, which WebTorrent
    // hashes pieces with), and http://10.213.0.1:PORT is not one by itself.
    `--unsafely-treat-insecure-origin-as-secure=${pageOrigin}`,
    // Otherwise host ICE candidates are random .local mDNS names, which
    // cannot be resolved here.
    '--disable-features=WebRtcHideLocalIpsWithMdns,MediaRouter,OptimizationHints,Translate,' +
      'NetworkTimeServiceQuerying,AimEnabled,PreconnectToSearch,AutofillServerCommunication',
    '--enable-features=SkipListAccountsWithoutGaiaCookies',
    // No name lookups at all: the test uses IP addresses only, and Chromium
    // would otherwise still try Google's hosts (accounts, clients2, update)
    // at start-up, whatever the flags above say.
    `--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE ${trackerHost}`,
    '--disable-component-extensions-with-background-pages',
    '--disable-field-trial-config',
    '--disable-default-apps',
    '--disable-extensions',
    '--disable-breakpad',
    '--disable-dev-shm-usage',
    // Timers of background pages must not be throttled: all pages are
    // "background" in headless mode with several browsers.
    '--disable-background-timer-throttling',
    '--disable-backgrounding-occluded-windows',
    '--disable-renderer-backgrounding',
    '--no-default-browser-check',
    '--password-store=basic',
    '--use-mock-keychain',
    '--metrics-recording-only',
    '--mute-audio',
    '--remote-debugging-pipe',
    '--no-startup-window'
  ]
}

// Runs in every page before its own scripts: records every WebSocket frame
// and every RTCPeerConnection config through the exposed __aqWire binding.
function instrumentPage () {
  const report = (kind, url, data) => {
    try { window.__aqWire(kind, url, typeof data === 'string' ? data : String(data)) } catch (e) {}
  }
  const NativeWebSocket = window.WebSocket
  class LoggedWebSocket extends NativeWebSocket {
    constructor (url, protocols) {
      super(url, protocols)
      report('open', String(url), '')
      this.addEventListener('message', (event) => report('recv', this.url, event.data))
      this.addEventListener('close', (event) => report('close', this.url, String(event.code)))
    }

    send (data) {
      report('send', this.url, data)
      return super.send(data)
    }
  }
  window.WebSocket = LoggedWebSocket
  const NativePC = window.RTCPeerConnection
  class LoggedPC extends NativePC {
    constructor (config, ...rest) {
      report('rtc-config', '', JSON.stringify(config === undefined ? null : config))
      super(config, ...rest)
    }
  }
  window.RTCPeerConnection = LoggedPC
}

const wire = [] // { t, browser, kind, url, data }
const requests = [] // { browser, url }
const instances = [] // { name, browser, userDataDir, page }

async function launch (name, pageOrigin) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), `aquatic-wt-${name}-`))
  const instance = { name, browser: null, userDataDir, page: null }
  instances.push(instance)
  instance.browser = await bounded(chromium.launch({
    executablePath: CHROMIUM,
    ignoreDefaultArgs: true,
    args: chromiumArgs(userDataDir, pageOrigin),
    timeout: 30000
  }), 40000, `launching chromium for ${name}`)
  const context = await instance.browser.newContext()
  await context.exposeFunction('__aqWire', (kind, url, data) => {
    wire.push({ t: Date.now() - started, browser: name, kind, url, data })
  })
  await context.addInitScript(instrumentPage)
  context.on('request', (req) => requests.push({ browser: name, url: req.url() }))
  const page = instance.page = await context.newPage()
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') {
      log(`${name} console.${msg.type()}: ${msg.text()}`)
    }
  })
  page.on('pageerror', (err) => log(`${name} page error: ${err.message}`))
  page.on('crash', () => log(`${name} page crashed`))
  instance.browser.on('disconnected', () => { if (!closing) log(`${name}: browser disconnected`) })
  return instance
}

async function loadPage (instance, origin) {
  await instance.page.goto(`${origin}/`, { timeout: Math.min(30000, remaining()) })
  await instance.page.waitForFunction(() => window.aqLoaded === true, null,
    { timeout: Math.min(30000, remaining()) })
}

let closing = false
async function closeAll () {
  closing = true
  await Promise.all(instances.map(async (instance) => {
    if (instance.browser) {
      try {
        await withTimeout(instance.browser.close(), 10000, `closing ${instance.name}`)
      } catch (err) {
        log(`${instance.name}: ${err.message}`)
      }
    }
    try {
      fs.rmSync(instance.userDataDir, { recursive: true, force: true, maxRetries: 5 })
    } catch (err) {
      log(`${instance.name}: removing ${instance.userDataDir}: ${err.message}`)
    }
  }))
}

// ---- wire analysis --------------------------------------------------------------

function parse (data) {
  try { return JSON.parse(data) } catch (e) { return null }
}

function binaryToHex (s) {
  return typeof s === 'string' ? Buffer.from(s, 'latin1').toString('hex') : null
}

// Addresses in SDP candidate lines ("a=candidate:... udp 2122260223 ADDR PORT typ host ...").
function candidateAddresses (sdp) {
  const addrs = []
  for (const line of String(sdp).split(/\r?\n/)) {
    const m = /^a=candidate:\S+ \d+ \S+ \d+ (\S+) \d+ typ /.exec(line)
    if (m) addrs.push(m[1])
  }
  return addrs
}

function containment (pageOrigin) {
  const problems = []
  const local = new Set()
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list) local.add(a.address)
  }
  let frames = 0
  let candidates = 0
  for (const w of wire) {
    if (w.kind === 'open' && w.url !== trackerUrl && w.url !== trackerUrl + '/') {
      problems.push(`${w.browser} opened a WebSocket to ${w.url}`)
    }
    if (w.kind === 'rtc-config') {
      const config = parse(w.data)
      if (!config || !Array.isArray(config.iceServers) || config.iceServers.length !== 0) {
        problems.push(`${w.browser} RTCPeerConnection config ${w.data}`)
      }
    }
    if (w.kind === 'send' || w.kind === 'recv') {
      frames++
      const msg = parse(w.data)
      const sdps = []
      if (msg && msg.offer) sdps.push(msg.offer.sdp)
      if (msg && msg.answer) sdps.push(msg.answer.sdp)
      if (msg && Array.isArray(msg.offers)) for (const o of msg.offers) sdps.push(o.offer && o.offer.sdp)
      for (const sdp of sdps) {
        for (const addr of candidateAddresses(sdp)) {
          candidates++
          if (!local.has(addr)) problems.push(`${w.browser} ICE candidate address ${addr} is not on this host`)
        }
      }
    }
  }
  for (const r of requests) {
    if (!r.url.startsWith(pageOrigin + '/') && !r.url.startsWith(trackerUrl)) {
      problems.push(`${r.browser} requested ${r.url}`)
    }
  }
  return { problems: [...new Set(problems)], frames, candidates }
}

function writeWireLog () {
  if (!wireLogPath) return
  const lines = wire.map((w) => JSON.stringify({ ...w, data: parse(w.data) ?? w.data }))
  fs.writeFileSync(wireLogPath, lines.join('\n') + '\n')
  log(`wire log: ${wire.length} entries in ${wireLogPath}`)
}

// The last frames, shortened, for a failure report.
function dumpWire (n) {
  for (const w of wire.slice(-n)) {
    let data = w.data
    const msg = parse(data)
    if (msg) {
      for (const k of ['info_hash', 'peer_id', 'to_peer_id', 'offer_id']) {
        if (typeof msg[k] === 'string') msg[k] = `hex:${binaryToHex(msg[k])}`
      }
      if (msg.offer) msg.offer = `<${msg.offer.type} sdp>`
      if (msg.answer) msg.answer = `<${msg.answer.type} sdp>`
      if (Array.isArray(msg.offers)) msg.offers = `<${msg.offers.length} offers>`
      data = JSON.stringify(msg)
    }
    console.log(`    ${(w.t / 1000).toFixed(1)}s ${w.browser} ${w.kind} ${data.slice(0, 300)}`)
  }
}

// ---- the test --------------------------------------------------------------------

async function waitFor (what, ms, intervalMs, probe) {
  const until = Date.now() + Math.min(ms, remaining())
  for (;;) {
    const value = await probe()
    if (value) return value
    if (Date.now() + intervalMs > until) throw new Error(`timeout: ${what}`)
    await sleep(intervalMs)
  }
}

async function test () {
  log(`tracker ${trackerUrl}, 1 seeder + ${downloaders} downloaders, timeout ${timeoutSeconds} s`)
  const server = await startPageServer()
  const pageOrigin = `http://${trackerHost.includes(':') ? `[${trackerHost}]` : trackerHost}:${server.address().port}`
  log(`page server on ${pageOrigin}`)
  try {
    const names = ['seeder', ...Array.from({ length: downloaders }, (_, i) => `downloader${i + 1}`)]
    for (const name of names) {
      const instance = await launch(name, pageOrigin)
      log(`${name}: chromium ${instance.browser.version()} started`)
    }
    await Promise.all(instances.map((instance) => loadPage(instance, pageOrigin)))
    log('all pages loaded the webtorrent bundle')

    const [seeder, ...leechers] = instances
    const seed = await bounded(seeder.page.evaluate((o) => window.aqSeed(o),
      { trackerUrl, size: FILE_SIZE, name: FILE_NAME }), 30000, 'seeding')
    log(`seeder: ${seed.length} bytes in ${seed.pieces} pieces, info hash ${seed.infoHash}, sha256 ${seed.sha256}`)
    log(`seeder: magnet ${seed.magnetURI}`)

    // Check 1: the tracker answered the seeder's announce.
    try {
      await waitFor('tracker reply to the seeder', 20000, 250, () =>
        wire.find((w) => w.browser === 'seeder' && w.kind === 'recv' && parse(w.data)?.action === 'announce' &&
          parse(w.data)?.interval !== undefined))
      check(true, 'seeder: announced, tracker replied')
    } catch (err) {
      const status = await seeder.page.evaluate(() => window.aqStatus()).catch(() => null)
      check(false, 'seeder: announced, tracker replied', `${err.message}; status ${JSON.stringify(status)}`)
      throw new Error('no tracker reply; not starting downloads')
    }

    await Promise.all(leechers.map((l) => l.page.evaluate((o) => window.aqDownload(o),
      { magnetURI: seed.magnetURI, trackerUrl })))
    log(`${leechers.length} downloaders started`)

    // Progress until every downloader is done (or the time is up).
    const results = new Map()
    let lastReport = 0
    const reported = []
    while (results.size < leechers.length && remaining() > 0) {
      const statuses = await withTimeout(Promise.all(instances.map((i) =>
        i.page.evaluate(() => window.aqStatus()))), 10000, 'polling status')
      for (const [idx, l] of leechers.entries()) {
        const s = statuses[idx + 1]
        if (s.done && !results.has(l.name)) {
          const r = await withTimeout(l.page.evaluate(() => window.aqResult()), 10000, `reading ${l.name}'s file`)
          results.set(l.name, r)
          log(`${l.name}: done, ${r.length} bytes, peers ${JSON.stringify(r.wires)}`)
        }
      }
      if (Date.now() - lastReport >= 2000 || results.size === leechers.length) {
        lastReport = Date.now()
        log('progress: ' + statuses.map((s, i) =>
          `${instances[i].name} ${(s.progress * 100).toFixed(0)}% peers=${s.numPeers} ` +
          `up=${s.uploaded} replies=${s.trackerReplies}`).join(', '))
        // Each error and warning once.
        for (const [i, s] of statuses.entries()) {
          const seen = reported[i] || (reported[i] = { errors: 0, warnings: 0 })
          for (const e of s.errors.slice(seen.errors)) log(`${instances[i].name} error: ${e}`)
          for (const w of s.warnings.slice(seen.warnings)) log(`${instances[i].name} warning: ${w}`)
          seen.errors = s.errors.length
          seen.warnings = s.warnings.length
        }
      }
      if (results.size < leechers.length) await sleep(500)
    }

    // Checks 2..N+1: every download equals the seeded file.
    for (const l of leechers) {
      const r = results.get(l.name)
      if (!r) {
        const status = await withTimeout(l.page.evaluate(() => window.aqStatus()), 5000, 'status')
          .catch((err) => err.message)
        check(false, `${l.name}: download`, `not complete after ${timeoutSeconds} s; status ${JSON.stringify(status)}`)
      } else {
        check(r.sha256 === seed.sha256 && r.length === seed.length,
          `${l.name}: downloaded file equals the seeded one`,
          `sha256 ${r.sha256}${r.sha256 === seed.sha256 ? '' : ` != ${seed.sha256}`}`)
      }
    }

    if (linger > 0 && results.size === leechers.length) {
      log(`lingering ${linger} s (periodic announces)`)
      await sleep(Math.min(linger * 1000, Math.max(0, remaining() - 15000)))
    }

    // Check N+2: a scrape counts everyone as a seeder (the `completed`
    // announces may still be on their way: retry a few times).
    // Check N+3: after downloader1 stops its torrent (a `stopped` announce),
    // one seeder less.
    // WT_CHECK_DOWNLOADED=1 (set for aquatic): the scrape's `downloaded`
    // must be the number of real downloads, not counting the seeder's
    // `completed` when it starts seeding (the reference tracker reports
    // its seeder count there instead).
    const checkDownloaded = process.env.WT_CHECK_DOWNLOADED === '1'
    const scrapeUntil = async (complete) => {
      let scrape = null
      for (let attempt = 0; attempt < 10 && remaining() > 1000; attempt++) {
        scrape = await bounded(seeder.page.evaluate((o) => window.aqScrape(o),
          { trackerUrl, infoHash: seed.infoHash, timeoutMs: 5000 }), 10000, 'scrape').catch((err) => ({ error: err.message }))
        if (scrape.reply && scrape.reply.complete === complete && scrape.reply.incomplete === 0 &&
            (!checkDownloaded || scrape.reply.downloaded === downloaders)) return [true, scrape]
        await sleep(1000)
      }
      return [false, scrape]
    }
    if (results.size === leechers.length) {
      const [ok, scrape] = await scrapeUntil(downloaders + 1)
      check(ok, `scrape: ${downloaders + 1} seeders, 0 leechers${checkDownloaded ? `, ${downloaders} downloaded` : ''}`, JSON.stringify(scrape))
      await bounded(leechers[0].page.evaluate(() => window.aqStop()), 10000, 'stopping downloader1\'s torrent')
      log(`${leechers[0].name}: torrent stopped`)
      const [ok2, scrape2] = await scrapeUntil(downloaders)
      check(ok2, `scrape after ${leechers[0].name} stopped: ${downloaders} seeders, 0 leechers`, JSON.stringify(scrape2))
    } else {
      check(false, `scrape: ${downloaders + 1} seeders, 0 leechers`, 'skipped: downloads incomplete')
      check(false, `scrape after ${leechers[0].name} stopped`, 'skipped: downloads incomplete')
    }

    // Check N+4: nothing left the test's own addresses.
    const c = containment(pageOrigin)
    check(c.problems.length === 0, 'only the test\'s own addresses were used',
      c.problems.length ? c.problems.slice(0, 10).join('; ')
        : `${c.frames} tracker frames, ${c.candidates} ICE candidates, ${requests.length} HTTP requests checked`)
  } finally {
    server.close()
    server.closeAllConnections()
  }
}

// Stopped from outside (webtorrent_ws.sh's cleanup, Ctrl-C): close the
// browsers and remove their profiles before exiting.
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, () => {
    log(`${signal}: closing the browsers`)
    closeAll().finally(() => {
      console.log('webtorrent: interrupted')
      process.exit(1)
    })
  })
}

// Checks that never ran count as failed.
const expectedChecks = downloaders + 4
let exitCode = 0
const watchdog = setTimeout(() => {
  // Last resort if closing the browsers hangs.
  console.log(`webtorrent: watchdog: still running ${timeoutSeconds + 30} s after start, exiting`)
  process.exit(3)
}, (timeoutSeconds + 30) * 1000)
watchdog.unref()

try {
  // Every step inside is bounded by the deadline; this is a backstop.
  await withTimeout(test(), timeoutSeconds * 1000 + 15000, 'whole test')
} catch (err) {
  log(`ERROR: ${err.message}`)
  exitCode = 1
}
if (checks.some((c) => !c.ok) || checks.length < expectedChecks) {
  exitCode = 1
  log('last tracker frames:')
  dumpWire(30)
}
try { writeWireLog() } catch (err) { log(`wire log: ${err.message}`) }
await closeAll()
const passed = checks.filter((c) => c.ok).length
console.log(`webtorrent: ${passed}/${expectedChecks} checks passed`)
process.exit(exitCode)
