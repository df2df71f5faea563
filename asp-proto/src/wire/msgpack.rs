//! MsgPack payload encoding and decoding (serde + rmp-serde), with errors
//! that name the offending key.
//!
//! serde's derive reports a missing field as a message, and a type error
//! without saying where it happened. `serde_path_to_error` supplies the path;
//! the missing-field message is turned back into a key here, in one place.

use bytes::BytesMut;
use serde::{de::DeserializeOwned, Deserialize as _, Serialize};

use super::PayloadError;
use crate::limits::MAX_NESTING_DEPTH;

/// A payload that travels as a MsgPack map and has rules beyond its types.
pub(crate) trait MapPayload: Serialize + DeserializeOwned {
    /// Rules serde cannot express (ranges, finite numbers, lengths).
    fn validate(&self) -> Result<(), PayloadError> {
        Ok(())
    }
}

/// Decodes a payload that must be exactly one MsgPack map. An empty payload
/// means the empty map, so frames whose keys are all optional can be sent
/// with no payload at all.
pub(crate) fn decode_map<T: MapPayload>(payload: &[u8]) -> Result<T, PayloadError> {
    const EMPTY_MAP: &[u8] = &[0x80];
    let bytes = if payload.is_empty() { EMPTY_MAP } else { payload };
    // A map marker: fixmap, map16 or map32. serde's derive would also accept
    // an array (positional fields), which the spec does not allow.
    if !matches!(bytes[0], 0x80..=0x8f | 0xde | 0xdf) {
        return Err(PayloadError::NotAMap);
    }
    // From the borrowed slice: rmp-serde's reader path would allocate a
    // scratch buffer per payload and copy every string through it.
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(MAX_NESTING_DEPTH + 1);
    let value = match T::deserialize(&mut de) {
        Ok(value) => value,
        // Field paths cost every decode a tracking wrapper, so they are
        // taken only for a payload that failed: decoding is deterministic,
        // so the second pass fails at the same place and names it.
        #[cfg(feature = "field-paths")]
        Err(first) => {
            let mut again = bytes;
            let Err(e) = serde_path_to_error::deserialize::<_, T>(&mut deserializer(&mut again)) else {
                return Err(path_error(".".to_owned(), first));
            };
            // serde_path_to_error writes `.` for the root and `?` where it
            // could not tell the key (the map itself was cut short): neither
            // names a key.
            let path = match e.path().to_string() {
                p if p == "?" => ".".to_owned(),
                p => p,
            };
            return Err(path_error(path, e.into_inner()));
        }
        #[cfg(not(feature = "field-paths"))]
        Err(e) => return Err(path_error(".".to_owned(), e)),
    };
    // The borrowing deserializer does not say where it stopped: anything
    // after the map is found by trying to read one more value, which at the
    // end of the payload fails at once on the missing marker. Only then is
    // the payload read again to count the trailing bytes.
    if !matches!(serde::de::IgnoredAny::deserialize(&mut de), Err(rmp_serde::decode::Error::InvalidMarkerRead(ref e)) if e.kind() == std::io::ErrorKind::UnexpectedEof)
    {
        let mut rest = bytes;
        // The same map decodes again; what follows it is the trailing part.
        let _ = T::deserialize(&mut deserializer(&mut rest));
        return Err(PayloadError::TrailingBytes(rest.len()));
    }
    value.validate()?;
    Ok(value)
}

/// A MsgPack deserializer over `rest` with the spec's nesting limit.
fn deserializer<'a, 'b>(
    rest: &'a mut &'b [u8],
) -> rmp_serde::Deserializer<rmp_serde::decode::ReadReader<&'a mut &'b [u8]>> {
    let mut de = rmp_serde::Deserializer::new(rest);
    // rmp-serde refuses a container when its depth budget is already spent,
    // so a budget of N admits N - 1 levels: one more gives exactly
    // MAX_NESTING_DEPTH levels counting the payload map (SPEC.md §6.1).
    de.set_max_depth(MAX_NESTING_DEPTH + 1);
    de
}

/// Appends `value` to `dst` as a MsgPack map with string keys.
pub(crate) fn encode_map<T: MapPayload>(value: &T, dst: &mut BytesMut) -> Result<(), PayloadError> {
    value.validate()?;
    rmp_serde::encode::write_named(&mut Appender(dst), value).map_err(|e| PayloadError::Malformed(e.to_string()))
}

/// `io::Write` that appends to a `BytesMut`. MsgPack is written a marker
/// and a field at a time (one to a few bytes each); `bytes`' own writer
/// passes every write through the generic `BufMut::put` and
/// `write_all`'s loop, which cost more than the copy itself.
struct Appender<'a>(&'a mut BytesMut);

impl std::io::Write for Appender<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.extend_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Classifies a decode error found at `path` (`.` for the payload map).
fn path_error(path: String, inner: rmp_serde::decode::Error) -> PayloadError {
    let message = inner.to_string();
    if let Some(field) = message.strip_prefix("missing field `").and_then(|m| m.strip_suffix('`')) {
        let key = if path == "." { field.to_owned() } else { format!("{path}.{field}") };
        return PayloadError::MissingKey(key);
    }
    match inner {
        // A structural failure (truncated input, depth) is about the bytes,
        // not about one key's value.
        rmp_serde::decode::Error::InvalidMarkerRead(_)
        | rmp_serde::decode::Error::InvalidDataRead(_)
        | rmp_serde::decode::Error::DepthLimitExceeded
        | rmp_serde::decode::Error::LengthMismatch(_) => {
            if path == "." {
                PayloadError::Malformed(message)
            } else {
                PayloadError::Malformed(format!("at `{path}`: {message}"))
            }
        }
        _ if path == "." => PayloadError::Malformed(message),
        _ => PayloadError::InvalidValue { key: path, reason: message },
    }
}

/// A key's value failed a rule beyond its type.
pub(crate) fn invalid(key: &str, reason: impl Into<String>) -> PayloadError {
    PayloadError::InvalidValue { key: key.to_owned(), reason: reason.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::payload::Interrupt;

    #[test]
    fn trailing_bytes_after_the_map_are_counted_whatever_they_are() {
        let mut map = BytesMut::new();
        encode_map(&Interrupt { reason: Some("stop".into()) }, &mut map).unwrap();
        let with = |tail: &[u8]| [&map[..], tail].concat();
        assert!(decode_map::<Interrupt>(&map).is_ok());
        for (tail, count) in [
            (&[0x01, 0x02, 0x03][..], 3), // three values
            (&[0xc1][..], 1),             // a marker MsgPack never uses
            (&[0xdd, 0xff, 0xff][..], 3), // a cut-short array32 header
            (&[0x91; 40][..], 40),        // nesting past the depth limit
            (&[0x80][..], 1),             // a second, empty map
        ] {
            match decode_map::<Interrupt>(&with(tail)) {
                Err(PayloadError::TrailingBytes(n)) => assert_eq!(n, count, "{tail:02x?}"),
                other => panic!("{tail:02x?}: {other:?}"),
            }
        }
    }
}
