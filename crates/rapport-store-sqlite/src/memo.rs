//! What the writer connection remembers between transactions, so that the capture hot path does not probe the
//! database for things it has seen before: interned event documents and event types by content, and the contacts
//! of tracking identities.
//!
//! Only facts that later writes cannot silently change are kept, and each is guarded:
//! - entries learnt in a transaction become known only once it commits (a rollback forgets them);
//! - erasing a contact forgets every document (their rows may be gone) and every identity;
//! - a merge forgets the identities of the contacts it absorbed;
//! - a write by any other connection to the file (another process) forgets everything, detected through
//!   `PRAGMA data_version` before each transaction.
//!
//! Only identities known to belong to a contact are remembered, never their absence: a later upsert may give an
//! unknown identity to someone, but nothing except a merge or an erasure takes one away.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use anyhow::Context;
use rapport_domain::{ContactId, IdentityKind, WorkspaceId};
use rusqlite::Connection;

/// Past this many entries of one kind, the memo starts afresh rather than grow without bound.
const MAX_ENTRIES: usize = 500_000;

pub(crate) type DocumentKey = (WorkspaceId, u128);
pub(crate) type IdentityKey = (WorkspaceId, IdentityKind, String);

#[derive(Default)]
pub(crate) struct WriterMemo {
    data_version: Option<i64>,
    pub(crate) documents: Remembered<DocumentKey, i64>,
    pub(crate) event_types: Remembered<(WorkspaceId, String), i64>,
    pub(crate) identities: Remembered<IdentityKey, ContactId>,
    /// Contacts merged away in the current transaction, whose remembered identities are wrong from then on.
    absorbed: HashSet<ContactId>,
}

impl WriterMemo {
    /// Starts afresh when another connection has written to the database since the last transaction.
    pub(crate) fn check_current(&mut self, connection: &Connection) -> anyhow::Result<()> {
        let version: i64 =
            connection.pragma_query_value(None, "data_version", |row| row.get(0)).context("reading data_version")?;
        if self.data_version != Some(version) {
            self.forget_all();
            self.data_version = Some(version);
        }
        Ok(())
    }

    /// The contact an identity belonged to when last seen, unless it was merged away since.
    pub(crate) fn identity(&self, key: &IdentityKey) -> Option<ContactId> {
        self.identities.get(key).filter(|contact| !self.absorbed.contains(contact))
    }

    pub(crate) fn contact_absorbed(&mut self, contact: ContactId) {
        self.absorbed.insert(contact);
    }

    pub(crate) fn contact_erased(&mut self) {
        self.documents.forget();
        self.identities.forget();
    }

    pub(crate) fn committed(&mut self) {
        self.documents.keep_pending();
        self.event_types.keep_pending();
        self.identities.keep_pending();
        if !self.absorbed.is_empty() {
            let absorbed = std::mem::take(&mut self.absorbed);
            self.identities.known.retain(|_, contact| !absorbed.contains(contact));
        }
    }

    pub(crate) fn rolled_back(&mut self) {
        self.documents.drop_pending();
        self.event_types.drop_pending();
        self.identities.drop_pending();
        // The merges did not happen, but the pointers may have been learnt meanwhile: forgetting is always safe.
        if !self.absorbed.is_empty() {
            let absorbed = std::mem::take(&mut self.absorbed);
            self.identities.known.retain(|_, contact| !absorbed.contains(contact));
        }
    }

    fn forget_all(&mut self) {
        self.documents.forget();
        self.event_types.forget();
        self.identities.forget();
        self.absorbed.clear();
    }
}

/// Known entries, and those learnt in the current transaction.
pub(crate) struct Remembered<K, V> {
    known: HashMap<K, V>,
    pending: HashMap<K, V>,
}

impl<K, V> Default for Remembered<K, V> {
    fn default() -> Self {
        Remembered { known: HashMap::new(), pending: HashMap::new() }
    }
}

impl<K: Eq + Hash, V: Copy> Remembered<K, V> {
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        self.pending.get(key).or_else(|| self.known.get(key)).copied()
    }

    pub(crate) fn learn(&mut self, key: K, value: V) {
        self.pending.insert(key, value);
    }

    fn keep_pending(&mut self) {
        if self.known.len() + self.pending.len() > MAX_ENTRIES {
            self.known.clear();
        }
        self.known.extend(self.pending.drain());
    }

    fn drop_pending(&mut self) {
        self.pending.clear();
    }

    fn forget(&mut self) {
        self.known.clear();
        self.pending.clear();
    }
}
