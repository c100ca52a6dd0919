//! Message ids: the 64-bit key that deduplicates them and the compact form an event keeps for its timeline.
//!
//! Deduplication goes through `message_ids`, a `WITHOUT ROWID` table keyed by `(workspace_id, hash)`, where the
//! hash is the first eight bytes of the SHA-256 of the id. Two different ids share a hash with probability about
//! n² / 2⁶⁵ for n stored ids of one workspace (about one in 3,700 at a hundred million ids, a few in a hundred at a
//! billion); when it happens, the later message is wrongly taken for a duplicate and dropped. That is the trade
//! for an index entry of about 20 bytes instead of a text key of 40 to 60. SHA-256 rather than a faster hash
//! because the value is stored: it must never change between builds or platforms, and nobody may choose ids that
//! collide with someone else's.
//!
//! An event keeps its message id in the column `events.message_id` only while that stays small, since it is paid
//! for on every event:
//! - a BLOB of 17 bytes for a UUID in canonical form (what most server and mobile libraries send), with a short
//!   prefix such as `ajs-` allowed, as long as the blob stays within [`MAX_KEPT_BYTES`];
//! - TEXT for other ids of at most [`MAX_KEPT_BYTES`] bytes;
//! - otherwise the INTEGER hash alone (nine bytes), and the timeline shows the event without its message id. This
//!   is the case of analytics.js's `ajs-next-` ids (41 characters) and of the ids Rapport generates for messages
//!   without one;
//! - NULL when the event has none.
//!
//! Erasing an event recomputes the hash from this column to drop the id from `message_ids`, so an erased event
//! leaves no trace.

use rapport_store::message_id::{MAX_KEPT_BYTES, pack_uuid, unpack_uuid};
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use sha2::{Digest, Sha256};

/// The deduplication key of a message id within its workspace: the first eight bytes of its SHA-256, which no
/// build or platform computes differently.
pub(crate) fn message_hash(message_id: &str) -> i64 {
    let digest = Sha256::digest(message_id.as_bytes());
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// The value stored in `events.message_id` for this id.
pub(crate) fn stored_message_id(message_id: &str) -> ToSqlOutput<'static> {
    if let Some(packed) = pack_uuid(message_id).filter(|packed| packed.len() <= MAX_KEPT_BYTES) {
        ToSqlOutput::Owned(Value::Blob(packed))
    } else if message_id.len() <= MAX_KEPT_BYTES {
        ToSqlOutput::Owned(Value::Text(message_id.to_owned()))
    } else {
        ToSqlOutput::Owned(Value::Integer(message_hash(message_id)))
    }
}

/// What an event's `message_id` column says about the id: the id itself when it was kept.
pub(crate) fn message_id_from_stored(stored: ValueRef<'_>) -> Option<String> {
    match stored {
        ValueRef::Text(text) => std::str::from_utf8(text).ok().map(str::to_owned),
        ValueRef::Blob(packed) => unpack_uuid(packed),
        ValueRef::Null | ValueRef::Integer(_) | ValueRef::Real(_) => None,
    }
}

/// The deduplication key of an event's stored message id, also when only the hash was kept.
pub(crate) fn hash_from_stored(stored: ValueRef<'_>) -> Option<i64> {
    match stored {
        ValueRef::Integer(hash) => Some(hash),
        other => message_id_from_stored(other).map(|id| message_hash(&id)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn round_trip(message_id: &str) -> (&'static str, usize, Option<String>) {
        let stored = stored_message_id(message_id);
        let value = match stored {
            ToSqlOutput::Owned(value) => value,
            _ => unreachable!("always owned"),
        };
        let (form, size) = match &value {
            Value::Blob(blob) => ("blob", blob.len()),
            Value::Text(text) => ("text", text.len()),
            Value::Integer(_) => ("hash", 8),
            _ => ("other", 0),
        };
        let value_ref = ValueRef::from(&value);
        assert_eq!(hash_from_stored(value_ref), Some(message_hash(message_id)), "{message_id}");
        (form, size, message_id_from_stored(value_ref))
    }

    #[test]
    fn uuids_are_packed_and_read_back() {
        let cases = [
            ("6f1c2c1e-9a3b-4b7e-8d2f-0c6a9f1e2d3b", 17),
            ("6F1C2C1E-9A3B-4B7E-8D2F-0C6A9F1E2D3B", 17),
            ("ajs-6f1c2c1e-9a3b-4b7e-8d2f-0c6a9f1e2d3b", 21),
            ("00000000-0000-0000-0000-000000000000", 17),
        ];
        for (message_id, size) in cases {
            assert_eq!(round_trip(message_id), ("blob", size, Some(message_id.to_owned())));
        }
    }

    #[test]
    fn short_ids_are_kept_and_long_ones_hashed() {
        for message_id in ["m-1", "订单-2025-0001", "0123456789abcdef01234567"] {
            let (form, _, back) = round_trip(message_id);
            assert_eq!((form, back.as_deref()), ("text", Some(message_id)));
        }
        for message_id in [
            "ajs-next-0123456789abcdef0123456789abcdef",
            "rapport-0123456789abcdef0123456789abcdef",
            "6f1c2c1e-9a3b-4b7e-8d2f-0c6a9f1e2D3b",
            "segment-replay-6f1c2c1e-9a3b-4b7e-8d2f-0c6a9f1e2d3b",
        ] {
            assert_eq!(round_trip(message_id), ("hash", 8, None), "{message_id}");
        }
    }

    #[test]
    fn hashes_are_stable() {
        // Stored values: a change here breaks deduplication against existing databases.
        assert_eq!(message_hash("m-1"), 0xa461_b472_cb41_a9ec_u64 as i64);
    }
}
