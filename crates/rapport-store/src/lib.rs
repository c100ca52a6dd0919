//! The storage boundary: record types, the error type and the [`Store`] trait that the SQLite and PostgreSQL
//! backends implement.
//!
//! Architecture invariant: this crate knows no SQL driver. Methods are named after what the product does
//! (`upsert_contacts`, `contact_timeline`), every method takes the workspace it acts in, and a method that returns
//! `Err` has written nothing.

#![forbid(unsafe_code)]

mod audience;
mod error;
mod job;
pub mod message_id;
mod records;
mod traits;

#[cfg(feature = "testsuite")]
pub mod testsuite;

pub use audience::*;
pub use error::{StoreError, StoreResult};
pub use job::*;
pub use records::*;
pub use traits::*;
