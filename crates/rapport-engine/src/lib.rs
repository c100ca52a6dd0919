//! The engine: work that runs beside the API. Today the ingestion pipeline; later the audience index, the journey
//! scheduler and the outbox workers.
//!
//! Architecture invariant: the engine talks to storage only through `rapport_store::Store` and knows nothing of
//! HTTP or JSON.

#![forbid(unsafe_code)]

mod ingest;

pub use ingest::{IngestConfig, IngestError, IngestWorker, Ingestor};
