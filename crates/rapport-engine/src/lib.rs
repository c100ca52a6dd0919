//! The engine: work that runs beside the API. Today the ingestion pipeline and the background job runner; later
//! the audience index, the journey scheduler and the outbox workers.
//!
//! Architecture invariant: the engine talks to storage only through `rapport_store::Store` and knows nothing of
//! HTTP. The only JSON it writes is the stored documents of jobs (see [`jobs`]).

#![forbid(unsafe_code)]

pub mod audience;
mod ingest;
pub mod jobs;

pub use ingest::{IngestConfig, IngestError, IngestWorker, Ingestor};
pub use jobs::{JobFiles, JobRunner, Jobs};
