use std::sync::Arc;

use rapport_engine::audience::Audience;
use rapport_engine::{Ingestor, Jobs};
use rapport_store::Store;

use crate::forms::{FormsConfig, FormsRuntime};

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// The group committer for tracking messages.
    pub ingestor: Ingestor,
    /// Queues background jobs (imports, exports) and knows where their files are.
    pub jobs: Jobs,
    /// The public side of forms: rate limiter and token key.
    pub forms: Arc<FormsRuntime>,
    /// The audience engine's handle: checks and previews filters, reports segments' state.
    pub audience: Audience,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        ingestor: Ingestor,
        jobs: Jobs,
        forms: FormsConfig,
        audience: Audience,
    ) -> AppState {
        AppState { store, ingestor, jobs, forms: Arc::new(FormsRuntime::new(forms)), audience }
    }
}
