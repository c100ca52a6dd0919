use std::sync::Arc;

use rapport_engine::Ingestor;
use rapport_store::Store;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// The group committer for tracking messages.
    pub ingestor: Ingestor,
}
