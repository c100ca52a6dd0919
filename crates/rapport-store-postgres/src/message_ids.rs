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
use rapport_store::message_id::{MAX_KEPT_BYTES, TAG_UPPER_UUID, pack_uuid, unpack_uuid};

/// The first byte of an id kept as it is whose own first byte would read as a packed form's tag.
const TAG_VERBATIM: u8 = 0;

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
    if let Some(packed) = pack_uuid(message_id).filter(|packed| packed.len() <= MAX_KEPT_BYTES) {
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
    match stored.split_first()? {
        (&TAG_VERBATIM, rest) => String::from_utf8(rest.to_vec()).ok(),
        (&tag, _) if tag <= TAG_UPPER_UUID => unpack_uuid(stored),
        _ => String::from_utf8(stored.to_vec()).ok(),
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
