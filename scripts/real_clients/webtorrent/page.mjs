// Browser side of the WebTorrent test: loaded by the page that run.mjs serves,
// driven from run.mjs with page.evaluate(). It only uses the webtorrent
// browser bundle as a web page would.

import WebTorrent from '/webtorrent.min.js'

const state = {
  client: null,
  torrent: null,
  role: null,
  errors: [],
  warnings: [],
  trackerReplies: 0
}

function message (err) {
  return (err && err.message) ? err.message : String(err)
}

function hex (buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, '0')).join('')
}

async function sha256 (bytes) {
  return hex(await crypto.subtle.digest('SHA-256', bytes))
}

function newClient () {
  const client = new WebTorrent({
    // No STUN or TURN: WebTorrent's default rtcConfig lists public STUN
    // servers. With none, peers offer their host candidates only.
    tracker: { rtcConfig: { iceServers: [] } },
    // Peers come from the tracker alone (DHT, LSD, UPnP and NAT-PMP do not
    // exist in the browser build anyway).
    dht: false,
    lsd: false,
    utPex: false,
    natUpnp: false,
    natPmp: false
  })
  client.on('error', (err) => state.errors.push(`client: ${message(err)}`))
  return client
}

function watch (torrent) {
  state.torrent = torrent
  torrent.on('error', (err) => state.errors.push(`torrent: ${message(err)}`))
  torrent.on('warning', (err) => state.warnings.push(`torrent: ${message(err)}`))
  // torrent-discovery re-emits the tracker client's `update` (an announce
  // reply with counts) as `trackerAnnounce`.
  torrent.on('trackerAnnounce', () => { state.trackerReplies += 1 })
}

function random (size) {
  const bytes = new Uint8Array(size)
  // getRandomValues fills at most 64 KiB per call.
  for (let off = 0; off < size; off += 65536) {
    crypto.getRandomValues(bytes.subarray(off, Math.min(off + 65536, size)))
  }
  return bytes
}

// Seeds `size` random bytes announced to `trackerUrl` only.
window.aqSeed = async ({ trackerUrl, size, name }) => {
  state.role = 'seeder'
  const bytes = random(size)
  const digest = await sha256(bytes)
  const file = new File([bytes], name, { type: 'application/octet-stream' })
  state.client = newClient()
  const torrent = await new Promise((resolve, reject) => {
    const t = state.client.seed(file, {
      announceList: [[trackerUrl]],
      announce: [trackerUrl]
    }, resolve)
    t.once('error', reject)
  })
  watch(torrent)
  return {
    infoHash: torrent.infoHash,
    magnetURI: torrent.magnetURI,
    length: torrent.length,
    pieces: torrent.pieces.length,
    announce: torrent.announce,
    sha256: digest
  }
}

// Starts downloading `magnetURI`; run.mjs polls aqStatus() and then calls
// aqResult() once it says done.
window.aqDownload = ({ magnetURI, trackerUrl }) => {
  state.role = 'downloader'
  state.client = newClient()
  const torrent = state.client.add(magnetURI, { announce: [trackerUrl] })
  watch(torrent)
  return { infoHash: torrent.infoHash }
}

window.aqStatus = () => {
  const t = state.torrent
  return {
    role: state.role,
    ready: !!(t && t.ready),
    done: !!(t && t.done),
    progress: t ? t.progress : 0,
    numPeers: t ? t.numPeers : 0,
    downloaded: t ? t.downloaded : 0,
    uploaded: t ? t.uploaded : 0,
    trackerReplies: state.trackerReplies,
    wires: t ? t.wires.map((w) => w.type + ' ' + (w.remoteAddress || '?')) : [],
    errors: state.errors.slice(),
    warnings: state.warnings.slice()
  }
}

window.aqResult = async () => {
  const t = state.torrent
  const file = t.files[0]
  const buffer = await file.arrayBuffer()
  return {
    name: file.name,
    length: buffer.byteLength,
    sha256: await sha256(buffer),
    wires: t.wires.map((w) => w.type + ' ' + (w.remoteAddress || '?'))
  }
}

// Stops (destroys) the torrent: the tracker client sends a `stopped` announce.
window.aqStop = () => new Promise((resolve) => state.torrent.destroy(() => resolve()))

// A WebSocket scrape as the bittorrent-tracker client sends it (the webtorrent
// client itself never scrapes): info_hash as a 20-char binary string.
window.aqScrape = ({ trackerUrl, infoHash, timeoutMs }) => new Promise((resolve, reject) => {
  const binary = infoHash.match(/../g).map((h) => String.fromCharCode(parseInt(h, 16))).join('')
  const ws = new WebSocket(trackerUrl)
  const timer = setTimeout(() => { ws.close(); reject(new Error('scrape: no reply')) }, timeoutMs)
  ws.onerror = () => { clearTimeout(timer); reject(new Error('scrape: WebSocket error')) }
  ws.onopen = () => ws.send(JSON.stringify({ action: 'scrape', info_hash: binary }))
  ws.onmessage = (event) => {
    clearTimeout(timer)
    ws.close()
    try {
      const reply = JSON.parse(event.data)
      const files = reply.files || {}
      const entry = files[binary]
      resolve({ reply: entry || null, keys: Object.keys(files).length, failure: reply['failure reason'] || null })
    } catch (err) {
      reject(new Error(`scrape: bad reply: ${message(err)}`))
    }
  }
})

window.aqLoaded = true
