//! What a connection sends: announces with offers, scrapes, and answers to
//! the offers relayed to it, as JSON text by aquatic_ws_protocol's
//! `InMessage::to_json`; and the peer a connection plays.

use aquatic_common::{InfoHash, PeerId};
use aquatic_load_test_common::torrents::{RequestMix, random_peer_id};
use aquatic_ws_protocol::{
    AnnounceEvent, AnnounceRequest, AnswerRequest, InMessage, JsonValue, Offer, OfferId,
    OfferMessage, ScrapeRequest,
};
use hashbrown::HashSet;
use rand::Rng;

use crate::config::Config;

/// A connection remembers this many torrents it announced to (to send
/// `started` only the first time); beyond that it forgets them all, and
/// the next announce to each is a `started` again (harmless to a tracker).
const MAX_REMEMBERED_TORRENTS: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Announce,
    Scrape,
}

const KINDS: [Kind; 2] = [Kind::Announce, Kind::Scrape];

/// A request just written: what its reply must match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    pub kind: Kind,
    /// The announce's torrent (unused for scrapes).
    pub info_hash: InfoHash,
    /// Offers in the announce.
    pub offers: usize,
}

/// The peer one connection plays: a peer id of its own, and offer ids it
/// can recognise when their answers come back (a random prefix and a
/// counter).
#[derive(Clone, Debug)]
pub struct Peer {
    pub peer_id: PeerId,
    offer_prefix: [u8; 12],
    offers_made: u64,
    /// Torrent indices announced to on this connection.
    announced: HashSet<u64>,
}

impl Peer {
    /// A new peer, for a new connection (a tracker does not let a peer id
    /// move to another connection).
    pub fn new(rng: &mut impl Rng) -> Self {
        Self {
            peer_id: random_peer_id(rng),
            offer_prefix: rng.random(),
            offers_made: 0,
            announced: HashSet::new(),
        }
    }

    fn next_offer_id(&mut self) -> OfferId {
        let mut id = [0u8; 20];
        id[..12].copy_from_slice(&self.offer_prefix);
        id[12..].copy_from_slice(&self.offers_made.to_be_bytes());
        self.offers_made += 1;
        OfferId(id)
    }

    /// Whether this peer made the offer with this id.
    pub fn made_offer(&self, offer_id: &OfferId) -> bool {
        let (prefix, counter) = offer_id.0.split_at(12);
        let mut n = [0u8; 8];
        n.copy_from_slice(counter);
        prefix == self.offer_prefix && u64::from_be_bytes(n) < self.offers_made
    }

    /// Whether this is the first announce of this peer to `torrent` (and
    /// remember it).
    fn first_announce(&mut self, torrent: u64) -> bool {
        if self.announced.len() >= MAX_REMEMBERED_TORRENTS {
            self.announced.clear();
        }
        self.announced.insert(torrent)
    }
}

pub struct RequestGenerator {
    mix: RequestMix<Kind>,
    offers_per_announce: usize,
    /// `{"type":"offer","sdp":...}`, cloned into every offer.
    offer: JsonValue,
    /// `{"type":"answer","sdp":...}`, cloned into every answer.
    answer: JsonValue,
}

impl RequestGenerator {
    pub fn new(config: &Config, rng: &mut impl Rng) -> anyhow::Result<Self> {
        let r = &config.requests;
        Ok(Self {
            mix: config.request_mix(&KINDS, &[r.weight_announce, r.weight_scrape])?,
            offers_per_announce: r.offers_per_announce,
            offer: session_description("offer", &fake_sdp(rng, "actpass")),
            answer: session_description("answer", &fake_sdp(rng, "active")),
        })
    }

    /// The next request of `peer`, of a kind drawn by weight, as JSON text.
    pub fn next_request(&self, rng: &mut impl Rng, peer: &mut Peer) -> (Sent, String) {
        let kind = self.mix.kind(rng);
        let (sent, message) = match kind {
            Kind::Announce => {
                let torrent = self.mix.torrent(rng);
                let info_hash = self.mix.info_hash_of(torrent);
                let event = if peer.first_announce(torrent) {
                    AnnounceEvent::Started
                } else {
                    AnnounceEvent::Update
                };
                let seeder = self.mix.seeder(rng);
                let offers = (0..self.offers_per_announce)
                    .map(|_| Offer {
                        offer_id: peer.next_offer_id(),
                        offer: self.offer.clone(),
                    })
                    .collect();
                let request = AnnounceRequest {
                    info_hash,
                    peer_id: peer.peer_id,
                    event,
                    left: Some(if seeder {
                        0
                    } else {
                        rng.random_range(1..1 << 30)
                    }),
                    numwant: Some(self.offers_per_announce as u64),
                    offers,
                };
                let sent = Sent {
                    kind,
                    info_hash,
                    offers: self.offers_per_announce,
                };
                (sent, InMessage::Announce(request))
            }
            Kind::Scrape => {
                let n = self.mix.scrape_len(rng);
                let info_hashes = (0..n).map(|_| self.mix.info_hash(rng)).collect();
                let sent = Sent {
                    kind,
                    info_hash: InfoHash([0; 20]),
                    offers: 0,
                };
                (sent, InMessage::Scrape(ScrapeRequest { info_hashes }))
            }
        };
        (sent, json_text(&message))
    }

    /// `peer`'s answer to a relayed offer, as JSON text.
    pub fn answer(&self, peer: &Peer, offer: &OfferMessage) -> String {
        json_text(&InMessage::Answer(AnswerRequest {
            info_hash: offer.info_hash,
            peer_id: peer.peer_id,
            to_peer_id: offer.peer_id,
            offer_id: offer.offer_id,
            answer: self.answer.clone(),
        }))
    }
}

/// The message as text. `to_json` writes UTF-8 (ids are JSON strings of
/// characters up to U+00FF); the lossy conversion only guards against a
/// bug there.
fn json_text(message: &InMessage) -> String {
    match String::from_utf8(message.to_json()) {
        Ok(text) => text,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    }
}

/// `{"type": kind, "sdp": sdp}`, as RTCSessionDescription serializes.
fn session_description(kind: &str, sdp: &str) -> JsonValue {
    let mut object = simd_json::owned::Object::new();
    object.insert("type".into(), JsonValue::from(kind));
    object.insert("sdp".into(), JsonValue::from(sdp));
    JsonValue::from(object)
}

/// An SDP as Chromium writes it for a WebRTC data channel once ICE
/// gathering is done (webtorrent sends offers without trickle ICE): about
/// 1.3 KB with host, server-reflexive and TCP candidates. The addresses are
/// documentation ranges (RFC 5737); no one can connect to them, and the
/// tracker only relays the text.
fn fake_sdp(rng: &mut impl Rng, setup: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut token = |len: usize| -> String {
        (0..len)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect()
    };
    let ufrag = token(4);
    let pwd = token(24);
    let fingerprint: Vec<String> = (0..32)
        .map(|_| format!("{:02X}", rng.random::<u8>()))
        .collect();
    let session_id: u64 = rng.random_range(1 << 60..u64::MAX >> 1);
    let foundation: u32 = rng.random();
    let port = rng.random_range(40_000..60_000u16);
    let mut sdp = format!(
        "v=0\r\no=- {session_id} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
         a=group:BUNDLE 0\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS\r\n\
         m=application {port} UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 198.51.100.7\r\n"
    );
    let candidates = [
        ("udp", 2_122_260_223u32, "192.0.2.10", port, "host", ""),
        ("udp", 2_122_194_687, "192.0.2.11", port + 1, "host", ""),
        (
            "udp",
            1_686_052_607,
            "198.51.100.7",
            port + 2,
            "srflx",
            " raddr 192.0.2.10 rport 0",
        ),
        (
            "tcp",
            1_518_280_447,
            "192.0.2.10",
            9,
            "host",
            " tcptype active",
        ),
        (
            "tcp",
            1_518_214_911,
            "192.0.2.11",
            9,
            "host",
            " tcptype active",
        ),
    ];
    for (n, (protocol, priority, address, port, kind, extra)) in candidates.iter().enumerate() {
        sdp.push_str(&format!(
            "a=candidate:{} 1 {protocol} {priority} {address} {port} typ {kind}{extra} \
             generation 0 network-id {} network-cost 10\r\n",
            foundation.wrapping_add(n as u32),
            n % 2 + 1,
        ));
    }
    sdp.push_str(&format!(
        "a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\na=ice-options:trickle\r\n\
         a=fingerprint:sha-256 {}\r\na=setup:{setup}\r\na=mid:0\r\n\
         a=sctp-port:5000\r\na=max-message-size:262144\r\n",
        fingerprint.join(":"),
    ));
    sdp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::shared_config_tests::config_with;
    use aquatic_load_test_common::testing;
    use aquatic_load_test_common::torrents::info_hash;
    use aquatic_ws_protocol::OutMessage;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn generator(config: &Config) -> (RequestGenerator, SmallRng) {
        let mut rng = SmallRng::seed_from_u64(5);
        (RequestGenerator::new(config, &mut rng).unwrap(), rng)
    }

    #[test]
    fn sdp_has_a_realistic_size() {
        let mut rng = SmallRng::seed_from_u64(1);
        let sdp = fake_sdp(&mut rng, "actpass");
        assert!((1024..2048).contains(&sdp.len()), "{}: {sdp}", sdp.len());
        assert!(sdp.starts_with("v=0\r\n") && sdp.ends_with("\r\n"));
        assert_eq!(sdp.matches("a=candidate:").count(), 5);
    }

    #[test]
    fn requests_parse_back_as_the_tracker_reads_them() {
        let config = config_with(|r| {
            r.number_of_torrents = 100;
            r.weight_scrape = 5;
            r.scrape_max_torrents = 4;
            r.offers_per_announce = 3;
        });
        let (g, mut rng) = generator(&config);
        let torrents = testing::first_info_hashes(100);
        let mut peer = Peer::new(&mut rng);
        let mut started = HashSet::new();
        let mut seen = [0; 2];
        for _ in 0..1000 {
            let (sent, text) = g.next_request(&mut rng, &mut peer);
            let mut bytes = text.into_bytes();
            match (sent.kind, InMessage::from_json(&mut bytes).unwrap()) {
                (Kind::Announce, InMessage::Announce(a)) => {
                    seen[0] += 1;
                    assert_eq!(a.info_hash, sent.info_hash);
                    assert!(torrents.contains(&a.info_hash));
                    assert_eq!(a.peer_id, peer.peer_id);
                    assert_eq!((a.offers.len(), a.numwant), (3, Some(3)));
                    assert_eq!(sent.offers, 3);
                    let first = started.insert(a.info_hash);
                    let expected = if first {
                        AnnounceEvent::Started
                    } else {
                        AnnounceEvent::Update
                    };
                    assert_eq!(a.event, expected);
                    for offer in &a.offers {
                        assert!(peer.made_offer(&offer.offer_id));
                        assert_eq!(offer.offer, g.offer);
                    }
                }
                (Kind::Scrape, InMessage::Scrape(s)) => {
                    seen[1] += 1;
                    testing::check_scrape(&s.info_hashes, 4, &torrents);
                }
                (kind, message) => panic!("{kind:?} written, {message:?} parsed"),
            }
        }
        assert!(seen[0] > 300 && seen[1] > 300, "{seen:?}");
        // A single announce with 3 offers of the fake SDP: 4-5 KB.
        let mut config = config.clone();
        config.requests.weight_scrape = 0;
        let (g, mut rng) = generator(&config);
        let (_, text) = g.next_request(&mut rng, &mut peer);
        assert!((3000..6000).contains(&text.len()), "{}", text.len());
    }

    #[test]
    fn answers_go_back_to_the_offering_peer() {
        let (g, mut rng) = generator(&Config::default());
        let (offerer, answerer) = (Peer::new(&mut rng), Peer::new(&mut rng));
        let offer = OfferMessage {
            info_hash: info_hash(0, 3),
            peer_id: offerer.peer_id,
            offer_id: OfferId([7; 20]),
            offer: g.offer.clone(),
        };
        let mut bytes = g.answer(&answerer, &offer).into_bytes();
        let InMessage::Answer(a) = InMessage::from_json(&mut bytes).unwrap() else {
            panic!("not an answer");
        };
        assert_eq!(a.info_hash, offer.info_hash);
        assert_eq!(a.peer_id, answerer.peer_id);
        assert_eq!(a.to_peer_id, offerer.peer_id);
        assert_eq!(a.offer_id, offer.offer_id);
        assert_eq!(a.answer["type"], "answer");
        // The relayed form parses as the tracker's message.
        let relayed = OutMessage::Offer(offer.clone());
        let mut json = relayed.to_json();
        assert_eq!(OutMessage::from_json(&mut json).unwrap(), relayed);
    }

    #[test]
    fn peers_recognise_only_their_own_offers() {
        let mut rng = SmallRng::seed_from_u64(2);
        let mut a = Peer::new(&mut rng);
        let b = Peer::new(&mut rng);
        let first = a.next_offer_id();
        let second = a.next_offer_id();
        assert!(a.made_offer(&first) && a.made_offer(&second));
        assert!(!b.made_offer(&first));
        // One the counter has not reached yet.
        let mut future = second;
        future.0[19] += 5;
        assert!(!a.made_offer(&future));
        assert_ne!(a.peer_id, b.peer_id);
        let max = MAX_REMEMBERED_TORRENTS as u64;
        assert!((0..max - 1).all(|torrent| a.first_announce(torrent)));
        assert!(!a.first_announce(0));
        assert!(a.first_announce(max - 1));
        // Full: forgotten, and the next is a first announce again.
        assert!(a.first_announce(0));
        assert_eq!(a.announced.len(), 1);
    }
}
