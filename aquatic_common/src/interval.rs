//! The announce interval clients are told, with jitter: each answer's
//! interval is `peer_announce_interval` plus a uniform random offset in
//! `-jitter..=+jitter` seconds, so clients that started together (a
//! tracker restart, a network coming back) drift apart instead of
//! announcing in lockstep for ever. The mean stays the configured interval
//! (the load on the tracker is unchanged), and no answer says less than
//! the `min interval` it gives (where that floor cuts into the jitter's
//! low end, the mean is a little higher).

use rand::Rng;

/// `protocol.peer_announce_interval_jitter`: `"auto"` (the default: a
/// fifteenth of the interval, 120 s of 1800, 8 s of 120, so that it stays
/// small whatever the interval) or a number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Jitter {
    #[default]
    Auto,
    Secs(u32),
}

impl Jitter {
    /// The jitter in seconds for an interval of `base` seconds.
    pub fn secs(self, base: u32) -> u32 {
        match self {
            Jitter::Auto => base / 15,
            Jitter::Secs(secs) => secs,
        }
    }
}

impl serde::Serialize for Jitter {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Jitter::Auto => serializer.serialize_str("auto"),
            Jitter::Secs(secs) => serializer.serialize_u32(*secs),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Jitter {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u32),
            Word(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Secs(secs) => Ok(Jitter::Secs(secs)),
            Raw::Word(word) if word == "auto" => Ok(Jitter::Auto),
            Raw::Word(word) => Err(serde::de::Error::custom(format!(
                "expected \"auto\" or a number of seconds, found {word:?}"
            ))),
        }
    }
}

/// `protocol.peer_announce_interval`, `..._jitter` and the floor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnounceInterval {
    pub base: u32,
    pub jitter: u32,
    /// No interval below this (HTTP's `min interval`; 1 elsewhere).
    pub floor: u32,
}

impl AnnounceInterval {
    pub const fn new(base: u32, jitter: u32) -> Self {
        Self {
            base,
            jitter,
            floor: 1,
        }
    }

    /// From the config's interval and jitter setting.
    pub fn configured(base: u32, jitter: Jitter) -> Self {
        Self::new(base, jitter.secs(base))
    }

    /// The interval for one answer.
    pub fn pick<R: Rng>(&self, rng: &mut R) -> u32 {
        let interval = if self.jitter == 0 {
            self.base
        } else {
            let low = self.base.saturating_sub(self.jitter);
            let high = self.base.saturating_add(self.jitter);
            rng.random_range(low..=high)
        };
        interval.max(self.floor).max(1)
    }
}

/// Log a warning when peers may expire before the longest interval they
/// are told is over (`cleaning.max_peer_age` at most interval + jitter):
/// they would drop out of their swarms until their next announce. A
/// warning, not an error: short peer ages are also used on purpose (load
/// tests, floods).
pub fn warn_if_peers_expire_early(max_peer_age: u32, base: u32, jitter: Jitter) {
    let longest = base.saturating_add(jitter.secs(base));
    if max_peer_age <= longest {
        log::warn!(
            "cleaning.max_peer_age ({max_peer_age} s) is not above protocol.peer_announce_interval + peer_announce_interval_jitter ({longest} s): peers may be dropped before they announce again"
        );
    }
}

/// `protocol.peer_announce_interval_jitter` must leave every interval
/// above zero.
pub fn jitter_check(base: u32, jitter: Jitter) -> crate::validation::Check {
    (
        jitter != Jitter::Auto && jitter.secs(base) >= base,
        "protocol.peer_announce_interval_jitter must be below protocol.peer_announce_interval",
    )
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    #[test]
    fn uniform_within_the_bounds_with_the_configured_mean() {
        let interval = AnnounceInterval::new(1800, 120);
        let mut rng = SmallRng::seed_from_u64(1);
        let n = 240_000;
        // 8 bins of 30 s over 1680..=1920 (the last one 31 s wide).
        let mut bins = [0u32; 8];
        let mut sum = 0u64;
        for _ in 0..n {
            let x = interval.pick(&mut rng);
            assert!((1680..=1920).contains(&x), "{x}");
            sum += u64::from(x);
            bins[(((x - 1680) / 30) as usize).min(7)] += 1;
        }
        let mean = sum as f64 / f64::from(n);
        assert!((mean - 1800.0).abs() < 1.0, "{mean}");
        // Each bin near an eighth (30 000): a uniform spread, not lumps.
        for (i, count) in bins.iter().enumerate() {
            let expected = if i == 7 { 31.0 } else { 30.0 } * f64::from(n) / 241.0;
            let off = (f64::from(*count) - expected).abs() / expected;
            assert!(off < 0.03, "bin {i}: {count} vs {expected}");
        }
    }

    #[test]
    fn no_jitter_the_floor_and_never_zero() {
        let mut rng = SmallRng::seed_from_u64(2);
        assert_eq!(AnnounceInterval::new(1800, 0).pick(&mut rng), 1800);
        let floored = AnnounceInterval {
            base: 100,
            jitter: 50,
            floor: 90,
        };
        assert!((0..1000).all(|_| (90..=150).contains(&floored.pick(&mut rng))));
        assert!((0..1000).all(|_| AnnounceInterval::new(1, 0).pick(&mut rng) == 1));
        assert!(jitter_check(120, Jitter::Secs(120)).0);
        assert!(!jitter_check(1800, Jitter::Secs(120)).0);
        // "auto" is a fifteenth of any interval, never too large.
        assert!(!jitter_check(5, Jitter::Auto).0);
        assert_eq!(Jitter::Auto.secs(1800), 120);
        assert_eq!(Jitter::Auto.secs(120), 8);
        assert_eq!(Jitter::Auto.secs(5), 0);
    }

    #[test]
    fn jitter_reads_auto_or_seconds() {
        #[derive(serde::Deserialize, serde::Serialize, Debug, PartialEq)]
        struct T {
            j: Jitter,
        }
        let auto: T = toml_like("auto");
        assert_eq!(auto.j, Jitter::Auto);
        assert_eq!(serde_json::to_string(&auto).unwrap(), r#"{"j":"auto"}"#);
        let secs: T = toml_like("90");
        assert_eq!(secs.j, Jitter::Secs(90));
        assert_eq!(serde_json::to_string(&secs).unwrap(), r#"{"j":90}"#);
        let bad = serde_json::from_str::<T>(r#"{"j":"often"}"#).unwrap_err();
        assert!(
            bad.to_string().contains("\"auto\" or a number of seconds"),
            "{bad}"
        );
    }

    /// `{"j": value}` read through serde_json (the config is TOML; both go
    /// through the same Deserialize).
    fn toml_like<T: serde::de::DeserializeOwned>(value: &str) -> T {
        let json = if value.parse::<u32>().is_ok() {
            format!(r#"{{"j":{value}}}"#)
        } else {
            format!(r#"{{"j":"{value}"}}"#)
        };
        serde_json::from_str(&json).unwrap()
    }
}
