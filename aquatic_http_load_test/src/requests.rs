//! Building request heads from the config's weights and torrent
//! distribution, with `Request::write` of aquatic_http_protocol.

use aquatic_http_protocol::{AnnounceEvent, AnnounceRequest, InfoHash, Request, ScrapeRequest};
use aquatic_load_test_common::torrents::{RequestMix, random_peer_id};
use rand::Rng;

use crate::config::Config;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Announce,
    Scrape,
}

const KINDS: [Kind; 2] = [Kind::Announce, Kind::Scrape];

const CONNECTION_CLOSE: &[u8] = b"Connection: close\r\n\r\n";
const CONNECTION_KEEP_ALIVE: &[u8] = b"Connection: keep-alive\r\n\r\n";

pub struct RequestGenerator {
    mix: RequestMix<Kind>,
    numwant: Option<usize>,
    /// The `Host` header: the server address.
    host: String,
    /// The `Connection` header (and the empty line) ending every request.
    connection_header: Option<&'static [u8]>,
    /// Reused by every scrape request.
    scrape_hashes: Vec<InfoHash>,
}

impl RequestGenerator {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let r = &config.requests;
        Ok(Self {
            mix: config.request_mix(&KINDS, &[r.weight_announce, r.weight_scrape])?,
            numwant: usize::try_from(r.peers_wanted).ok(),
            host: config.server_address.to_string(),
            connection_header: config.connection_header.then_some(if config.keep_alive {
                CONNECTION_KEEP_ALIVE
            } else {
                CONNECTION_CLOSE
            }),
            scrape_hashes: Vec::with_capacity(r.scrape_max_torrents),
        })
    }

    fn announce(&self, rng: &mut impl Rng) -> AnnounceRequest {
        let seeder = self.mix.seeder(rng);
        // Mostly regular announces, sometimes started / completed.
        let event = match rng.random_range(0u8..100) {
            0..=84 => AnnounceEvent::None,
            85..=94 => AnnounceEvent::Started,
            _ => AnnounceEvent::Completed,
        };
        AnnounceRequest {
            info_hash: self.mix.info_hash(rng),
            peer_id: random_peer_id(rng),
            port: rng.random_range(1024..=u16::MAX),
            bytes_uploaded: rng.random_range(0..1 << 30),
            bytes_downloaded: rng.random_range(0..1 << 30),
            bytes_left: if seeder {
                0
            } else {
                rng.random_range(1..1 << 30)
            },
            event,
            numwant: self.numwant,
            compact: true,
            no_peer_id: false,
            // None: no allocation.
            key: None,
        }
    }

    /// Replace `out` with the head of a request of a kind drawn by weight
    /// (`Connection: close` added unless keep-alive), and return the kind.
    pub fn write_next(&mut self, rng: &mut impl Rng, out: &mut Vec<u8>) -> Kind {
        let kind = self.mix.kind(rng);
        out.clear();
        match kind {
            Kind::Announce => {
                Request::Announce(self.announce(rng)).write(out, "", &self.host);
            }
            Kind::Scrape => {
                let mut info_hashes = std::mem::take(&mut self.scrape_hashes);
                info_hashes.clear();
                let n = self.mix.scrape_len(rng);
                info_hashes.extend((0..n).map(|_| self.mix.info_hash(rng)));
                let request = Request::Scrape(ScrapeRequest { info_hashes });
                request.write(out, "", &self.host);
                // Hand the vector back for the next scrape.
                if let Request::Scrape(scrape) = request {
                    self.scrape_hashes = scrape.info_hashes;
                }
            }
        }
        if let Some(header) = self.connection_header
            && out.ends_with(b"\r\n\r\n")
        {
            // Before the empty line that ends the head.
            out.truncate(out.len() - 2);
            out.extend_from_slice(header);
        }
        kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::shared_config_tests::config_with;
    use aquatic_http_protocol::{ParseOptions, parse_request};
    use aquatic_load_test_common::testing;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn options() -> ParseOptions<'static> {
        ParseOptions {
            max_scrape_torrents: 1000,
            reverse_proxy_header: None,
            allowed_hosts: &[],
        }
    }

    #[test]
    fn written_requests_parse_back() {
        let mut config = config_with(|r| {
            r.number_of_torrents = 100;
            r.scrape_max_torrents = 5;
            r.weight_scrape = 5;
        });
        let torrents = testing::first_info_hashes(100);
        for (keep_alive, header) in [(true, true), (true, false), (false, true), (false, false)] {
            config.keep_alive = keep_alive;
            config.connection_header = header;
            let mut g = RequestGenerator::new(&config).unwrap();
            let mut rng = SmallRng::seed_from_u64(9);
            let mut out = Vec::new();
            let mut seen = [0; 2];
            for _ in 0..1000 {
                let kind = g.write_next(&mut rng, &mut out);
                let parsed = parse_request(&out, &options()).unwrap();
                assert_eq!(parsed.consumed, out.len());
                assert_eq!(parsed.keep_alive, keep_alive || !header);
                assert_eq!(parsed.keep_alive_asked, keep_alive && header);
                let text = std::str::from_utf8(&out).unwrap();
                assert!(text.contains("\r\nHost: 127.0.0.1:3000\r\n"), "{text}");
                match (kind, parsed.request) {
                    (Kind::Announce, Request::Announce(a)) => {
                        seen[0] += 1;
                        assert!(torrents.contains(&a.info_hash));
                        assert_eq!(a.numwant, Some(30));
                        assert!(a.port >= 1024 && a.compact);
                        assert_eq!(&a.peer_id.0[..8], b"-AQ0100-");
                    }
                    (Kind::Scrape, Request::Scrape(s)) => {
                        seen[1] += 1;
                        testing::check_scrape(&s.info_hashes, 5, &torrents);
                    }
                    (kind, request) => panic!("{kind:?} written, {request:?} parsed"),
                }
            }
            assert!(seen[0] > 300 && seen[1] > 300, "{seen:?}");
        }
    }

    #[test]
    fn peers_wanted_minus_one_leaves_numwant_out() {
        let mut config = Config::default();
        config.requests.peers_wanted = -1;
        config.requests.weight_scrape = 0;
        config.requests.peer_seeder_probability = 1.0;
        let mut g = RequestGenerator::new(&config).unwrap();
        let mut rng = SmallRng::seed_from_u64(1);
        let mut out = Vec::new();
        assert_eq!(g.write_next(&mut rng, &mut out), Kind::Announce);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(
            !text.contains("numwant") && text.contains("&left=0"),
            "{text}"
        );
    }
}
