//! Stateless connection ids (BEP 15): the creation time plus a keyed hash of
//! (creation time, client IP) under a key made at start.
//!
//! Nothing is stored per client, so a flood of connect requests costs no
//! memory; a client can only present a valid id for the address it received
//! it at, which is what keeps spoofed-source traffic from being answered
//! with anything but a 16-byte connect response.

use std::hash::Hasher;
use std::net::IpAddr;

use aquatic_common::SecondsSinceStart;
use aquatic_udp_protocol::ConnectionId;
use siphasher::sip::SipHasher13;

#[derive(Clone)]
pub struct ConnectionValidator {
    keys: (u64, u64),
    max_age: u32,
}

impl ConnectionValidator {
    /// A validator with a fresh random key: ids from an earlier run of the
    /// daemon are not accepted.
    pub fn new(max_age: u32) -> Self {
        Self {
            keys: (rand::random(), rand::random()),
            max_age,
        }
    }

    pub fn create(&self, now: SecondsSinceStart, ip: IpAddr) -> ConnectionId {
        let created = now.0.to_be_bytes();
        let hash = self.hash(created, ip).to_be_bytes();
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&created);
        bytes[4..].copy_from_slice(&hash[..4]);
        ConnectionId(i64::from_be_bytes(bytes))
    }

    pub fn is_valid(&self, now: SecondsSinceStart, id: ConnectionId, ip: IpAddr) -> bool {
        let bytes = id.0.to_be_bytes();
        let created = [bytes[0], bytes[1], bytes[2], bytes[3]];
        let created_secs = u32::from_be_bytes(created);
        // Socket workers' coarse clocks may differ by a second.
        if created_secs > now.0.saturating_add(1) {
            return false;
        }
        if now.0.saturating_sub(created_secs) > self.max_age {
            return false;
        }
        let hash = self.hash(created, ip).to_be_bytes();
        hash[..4] == bytes[4..]
    }

    fn hash(&self, created: [u8; 4], ip: IpAddr) -> u64 {
        let mut hasher = SipHasher13::new_with_keys(self.keys.0, self.keys.1);
        hasher.write(&created);
        match ip {
            IpAddr::V4(v4) => hasher.write(&v4.octets()),
            IpAddr::V6(v6) => hasher.write(&v6.octets()),
        }
        hasher.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_for_max_age_and_own_ip_only() {
        let v = ConnectionValidator::new(120);
        let ip: IpAddr = "1.2.3.4".parse().unwrap();
        let other: IpAddr = "1.2.3.5".parse().unwrap();
        let t = SecondsSinceStart(1000);
        let id = v.create(t, ip);
        assert!(v.is_valid(t, id, ip));
        assert!(v.is_valid(t.add_secs(120), id, ip));
        assert!(!v.is_valid(t.add_secs(121), id, ip));
        assert!(!v.is_valid(t, id, other));
        assert!(!v.is_valid(SecondsSinceStart(998), id, ip));
        assert!(!v.is_valid(t, ConnectionId(id.0 ^ 1), ip));
    }

    #[test]
    fn other_key_rejects() {
        let ip: IpAddr = "::1".parse().unwrap();
        let t = SecondsSinceStart(5);
        let id = ConnectionValidator::new(120).create(t, ip);
        assert!(!ConnectionValidator::new(120).is_valid(t, id, ip));
    }
}
