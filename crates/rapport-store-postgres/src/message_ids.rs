//! Message ids: the 64-bit key that deduplicates them and the compact form an event keeps for its timeline.
//!
//! The key is the first eight bytes of the SHA-256 of the workspace id (eight bytes, big-endian) followed by the
//! message id. Folding the workspace in keeps message ids per workspace without a workspace column in `events`.
//! Two different ids share a key with probability about n² / 2⁶⁵ for n stored ids (about one in 3,700 at a hundred
//! million, a few in a hundred at a billion); when it happens, the later message is wrongly taken for a duplicate.
//! That is the trade for an index entry of 20 bytes instead of one of 40 to 60 with the text. SHA-256 rather than a
//! faster hash because the value is stored: it must never change between builds, and nobody may choose ids that
//! collide with someone else's. The migration that created the column computes the same value in SQL.
//!
//! An event keeps its message id in `events.message_id` only while that stays small, since it is paid for on every
//! event, with the same rules as the SQLite backend so that both show the same timeline:
//! - 17 bytes for a UUID in canonical form (what most server and mobile libraries send), with a short prefix such
//!   as `ajs-` allowed, as long as the packed form stays within [`MAX_KEPT_BYTES`];
//! - other ids of at most [`MAX_KEPT_BYTES`] bytes as they are;
//! - otherwise nothing (an empty value, rather than NULL, which would give the row a null bitmap): the hash alone
//!   is kept, and the timeline shows the event without its message id. This is the case of analytics.js's
//!   `ajs-next-` ids (41 characters) and of the ids Rapport generates for messages without one.
//!
//! The first byte tells the forms apart: 1 and 2 tag a packed UUID (lower or upper case), 0 tags an id kept as it
//! is whose own first byte is one of these (the first schema's events carry it on every id); any other first byte
//! starts an id kept as it is.

use sha2::{Digest, Sha256};

use rapport_domain::WorkspaceId;

/// Ids that take more room than this, even packed, are kept as their hash only.
const MAX_KEPT_BYTES: usize = 24;

const UUID_LENGTH: usize = 36;
const UUID_DASHES: [usize; 4] = [8, 13, 18, 23];

/// Tags of the stored forms: the first byte.
const TAG_VERBATIM: u8 = 0;
const TAG_LOWER_UUID: u8 = 1;
const TAG_UPPER_UUID: u8 = 2;

/// The deduplication key of a message id within its workspace.
pub(crate) fn message_hash(workspace: WorkspaceId, message_id: &str) -> i64 {
    let digest =
        Sha256::new().chain_update(workspace.get().to_be_bytes()).chain_update(message_id.as_bytes()).finalize();
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// The key of an interned JSON document: the first 16 bytes of the SHA-256 of its text.
pub(crate) fn document_hash(body: &[u8]) -> [u8; 16] {
    let digest = Sha256::digest(body);
    let mut first = [0_u8; 16];
    first.copy_from_slice(&digest[..16]);
    first
}

/// The value stored in `events.message_id`: empty when only the hash is kept.
pub(crate) fn stored_message_id(message_id: &str) -> Vec<u8> {
    if let Some(packed) = pack(message_id).filter(|packed| packed.len() <= MAX_KEPT_BYTES) {
        return packed;
    }
    let bytes = message_id.as_bytes();
    match bytes.first() {
        _ if bytes.len() > MAX_KEPT_BYTES => Vec::new(),
        Some(&first) if first <= TAG_UPPER_UUID => [&[TAG_VERBATIM], bytes].concat(),
        _ => bytes.to_vec(),
    }
}

/// The message id an event's `message_id` column gives back, when it was kept.
pub(crate) fn message_id_from_stored(stored: &[u8]) -> Option<String> {
    let (&tag, rest) = stored.split_first()?;
    let hex = match tag {
        TAG_VERBATIM => return String::from_utf8(rest.to_vec()).ok(),
        TAG_LOWER_UUID => b"0123456789abcdef",
        TAG_UPPER_UUID => b"0123456789ABCDEF",
        _ => return String::from_utf8(stored.to_vec()).ok(),
    };
    let (prefix, digits) = rest.split_at(rest.len().checked_sub(16)?);
    let mut text = String::from_utf8(prefix.to_vec()).ok()?;
    for (index, byte) in digits.iter().enumerate() {
        if [4, 6, 8, 10].contains(&index) {
            text.push('-');
        }
        text.push(char::from(hex[usize::from(byte >> 4)]));
        text.push(char::from(hex[usize::from(byte & 0x0f)]));
    }
    Some(text)
}

/// A UUID at the end of the id, packed: a tag for its case, the prefix as it is, the 16 bytes.
fn pack(message_id: &str) -> Option<Vec<u8>> {
    let bytes = message_id.as_bytes();
    let (prefix, uuid) = bytes.split_at(bytes.len().checked_sub(UUID_LENGTH)?);
    let tag = match uuid_case(uuid)? {
        Case::Lower => TAG_LOWER_UUID,
        Case::Upper => TAG_UPPER_UUID,
    };
    let digits: Vec<u8> = uuid.iter().copied().filter(|&byte| byte != b'-').collect();
    let mut packed = Vec::with_capacity(1 + prefix.len() + 16);
    packed.push(tag);
    packed.extend_from_slice(prefix);
    pack_hex(&digits, &mut packed);
    Some(packed)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    Lower,
    Upper,
}

/// Whether the 36 bytes are a UUID in its canonical text form, all in one case.
fn uuid_case(uuid: &[u8]) -> Option<Case> {
    let mut case = None;
    for (index, &byte) in uuid.iter().enumerate() {
        if UUID_DASHES.contains(&index) {
            if byte != b'-' {
                return None;
            }
            continue;
        }
        let byte_case = match byte {
            b'0'..=b'9' => continue,
            b'a'..=b'f' => Case::Lower,
            b'A'..=b'F' => Case::Upper,
            _ => return None,
        };
        match case {
            None => case = Some(byte_case),
            Some(seen) if seen != byte_case => return None,
            Some(_) => {}
        }
    }
    // All digits: either case reads it back the same.
    Some(case.unwrap_or(Case::Lower))
}

fn pack_hex(digits: &[u8], packed: &mut Vec<u8>) {
    for pair in digits.chunks_exact(2) {
        packed.push((nibble(pair[0]) << 4) | nibble(pair[1]));
    }
}

fn nibble(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn round_trip(message_id: &str) -> (usize, Option<String>) {
        let stored = stored_message_id(message_id);
        (stored.len(), message_id_from_stored(&stored))
    }

    #[test]
    fn stored_forms() {
        let cases = [
            ("6f1c2c1e-9a3b-4b7e-8d2f-0c6a9f1e2d3b", 17, true),
            ("6F1C2C1E-9A3B-4B7E-8D2F-0C6A9F1E2D3B", 17, true),
            ("ajs-6f1c2c1e-9a3b-4b7e-8d2f-0c6a9f1e2d3b", 21, true),
            ("00000000-0000-0000-0000-000000000000", 17, true),
            ("m-1", 3, true),
            ("订单-2025-0001", 16, true),
            ("\u{1}m", 3, true),
            ("6f1c2c1e-9a3b-4b7e-8d2f-0c6a9f1e2D3b", 0, false),
            ("ajs-next-0123456789abcdef0123456789abcdef", 0, false),
            ("campaign-mail-2025-06-15-customer-segment-b-resend-17", 0, false),
        ];
        for (message_id, size, kept) in cases {
            let expected = kept.then(|| message_id.to_owned());
            assert_eq!(round_trip(message_id), (size, expected), "{message_id:?}");
        }
        assert_eq!(message_id_from_stored(b"\x00m-1").as_deref(), Some("m-1"), "the first schema's form");
    }

    #[test]
    fn hashes_are_stable_and_per_workspace() {
        // Stored values: a change here breaks deduplication against existing databases (and the migration that
        // computes them in SQL).
        assert_eq!(message_hash(WorkspaceId::new(1), "m-1"), message_hash(WorkspaceId::new(1), "m-1"));
        assert_ne!(message_hash(WorkspaceId::new(1), "m-1"), message_hash(WorkspaceId::new(2), "m-1"));
        assert_eq!(message_hash(WorkspaceId::new(1), "m-1"), 0x0040_251e_32fd_d0ad);
    }
}
