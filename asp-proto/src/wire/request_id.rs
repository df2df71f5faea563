//! Request ids and the role that chose them.

use std::fmt;

/// Which end of a session a peer is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Opened the transport and sends the first HELLO; opens odd request ids.
    Client,
    /// Accepted the transport and answers HELLO (a direct server or a relay);
    /// opens even request ids.
    Server,
}

impl Role {
    /// The other end.
    pub fn peer(self) -> Role {
        match self {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        }
    }
}

/// The 16-bit request id of a frame header (SPEC.md §5).
///
/// `0` means the connection itself; any other value names one invocation.
/// The peer that sends INVOKE picks the id: clients use odd ids and servers
/// even ones, as HTTP/2 streams do, so both sides can open invocations
/// without coordinating.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RequestId(pub u16);

impl RequestId {
    /// The connection itself (request id 0).
    pub const CONNECTION: RequestId = RequestId(0);

    /// True for request id 0.
    pub fn is_connection(self) -> bool {
        self.0 == 0
    }

    /// The role whose INVOKE opens this id, or `None` for id 0.
    pub fn initiator(self) -> Option<Role> {
        match self.0 {
            0 => None,
            n if n % 2 == 1 => Some(Role::Client),
            _ => Some(Role::Server),
        }
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u16> for RequestId {
    fn from(id: u16) -> Self {
        RequestId(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parity_names_the_initiator() {
        assert_eq!(RequestId(0).initiator(), None);
        assert_eq!(RequestId(1).initiator(), Some(Role::Client));
        assert_eq!(RequestId(2).initiator(), Some(Role::Server));
        assert_eq!(RequestId(u16::MAX).initiator(), Some(Role::Client));
        assert_eq!(Role::Client.peer(), Role::Server);
    }
}

/// A map keyed by request id, with a hasher made for 16-bit ids.
///
/// The default SipHash showed up at ~8% of a streaming profile (one lookup
/// per chunk on each side); ids are not attacker-chosen hash-flooding
/// material beyond 65,536 values, so a multiplicative hash is enough.
pub type RequestIdMap<V> = std::collections::HashMap<RequestId, V, std::hash::BuildHasherDefault<RequestIdHasher>>;

/// Fibonacci hashing of a request id: spreads the 16 bits over the high
/// bits that hashbrown uses for its control bytes.
#[derive(Default, Clone, Copy, Debug)]
pub struct RequestIdHasher(u64);

impl std::hash::Hasher for RequestIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u16(&mut self, id: u16) {
        self.0 = u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[cfg(test)]
mod hasher_tests {
    use super::*;

    #[test]
    fn every_id_is_found_and_ids_spread_over_the_high_bits() {
        let map: RequestIdMap<u16> = (0..=u16::MAX).map(|i| (RequestId(i), i)).collect();
        assert!((0..=u16::MAX).all(|i| map.get(&RequestId(i)) == Some(&i)));
        let top7 = |i: u16| {
            use std::hash::BuildHasher;
            std::hash::BuildHasherDefault::<RequestIdHasher>::default().hash_one(RequestId(i)) >> 57
        };
        let distinct: std::collections::HashSet<u64> = (1..=64u16).map(top7).collect();
        assert!(distinct.len() > 32, "consecutive ids share control bytes: {}", distinct.len());
    }
}
