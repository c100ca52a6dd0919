//! Group commit for tracking messages. Requests hand their messages to one committer task; it takes everything
//! waiting (up to a batch limit), writes each workspace's share in one store transaction, and only then answers
//! every request. A client is acknowledged once its data is durable, and throughput does not pay one transaction
//! (one fsync) per message.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rapport_domain::WorkspaceId;
use rapport_store::{Store, StoreError, TrackingMessage, TrackingOutcome};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone, Copy)]
pub struct IngestConfig {
    /// Messages accepted but not yet committed; past this, callers are told to come back later.
    pub max_pending_messages: usize,
    /// The most messages one commit takes.
    pub max_batch_messages: usize,
}

impl Default for IngestConfig {
    fn default() -> IngestConfig {
        IngestConfig { max_pending_messages: 100_000, max_batch_messages: 10_000 }
    }
}

#[derive(Debug, Error)]
pub enum IngestError {
    /// Too much is waiting to be committed; nothing of this request was taken.
    #[error("the ingestion queue is full")]
    Overloaded,
    /// The server is shutting down.
    #[error("ingestion has stopped")]
    Stopped,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The handle requests use; cheap to clone.
#[derive(Clone)]
pub struct Ingestor {
    sender: mpsc::UnboundedSender<Job>,
    pending: Arc<AtomicUsize>,
    config: IngestConfig,
}

/// The committer. Its owner runs it beside the server; it ends once every `Ingestor` is dropped and the queue is
/// drained, so nothing accepted is left behind on shutdown.
pub struct IngestWorker {
    store: Arc<dyn Store>,
    receiver: mpsc::UnboundedReceiver<Job>,
    pending: Arc<AtomicUsize>,
    config: IngestConfig,
}

struct Job {
    workspace: WorkspaceId,
    messages: Vec<TrackingMessage>,
    reply: oneshot::Sender<Result<Vec<TrackingOutcome>, IngestError>>,
}

impl Ingestor {
    pub fn new(store: Arc<dyn Store>, config: IngestConfig) -> (Ingestor, IngestWorker) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let ingestor = Ingestor { sender, pending: pending.clone(), config };
        (ingestor, IngestWorker { store, receiver, pending, config })
    }

    /// Commits the messages and returns one outcome per message, in order, once they are durable.
    pub async fn submit(
        &self,
        workspace: WorkspaceId,
        messages: Vec<TrackingMessage>,
    ) -> Result<Vec<TrackingOutcome>, IngestError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let count = messages.len();
        let admitted = self.pending.fetch_update(Ordering::AcqRel, Ordering::Acquire, |pending| {
            (pending + count <= self.config.max_pending_messages).then_some(pending + count)
        });
        if admitted.is_err() {
            return Err(IngestError::Overloaded);
        }
        let (reply, answer) = oneshot::channel();
        if self.sender.send(Job { workspace, messages, reply }).is_err() {
            self.pending.fetch_sub(count, Ordering::AcqRel);
            return Err(IngestError::Stopped);
        }
        answer.await.map_err(|_| IngestError::Stopped)?
    }
}

impl IngestWorker {
    pub async fn run(mut self) {
        while let Some(first) = self.receiver.recv().await {
            let mut jobs = vec![first];
            let mut messages = jobs[0].messages.len();
            while messages < self.config.max_batch_messages {
                match self.receiver.try_recv() {
                    Ok(job) => {
                        messages += job.messages.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            self.commit(jobs).await;
            self.pending.fetch_sub(messages, Ordering::AcqRel);
        }
        tracing::debug!("ingestion stopped: every sender is gone and the queue is drained");
    }

    /// Writes one group: per workspace, all jobs' messages in one store call, then splits the outcomes back.
    async fn commit(&self, jobs: Vec<Job>) {
        let mut by_workspace: BTreeMap<WorkspaceId, Vec<Job>> = BTreeMap::new();
        for job in jobs {
            by_workspace.entry(job.workspace).or_default().push(job);
        }
        for (workspace, mut jobs) in by_workspace {
            let sizes: Vec<usize> = jobs.iter().map(|job| job.messages.len()).collect();
            let messages: Vec<TrackingMessage> =
                jobs.iter_mut().flat_map(|job| std::mem::take(&mut job.messages)).collect();
            match self.store.ingest_tracking(workspace, messages).await {
                Ok(outcomes) => {
                    let mut outcomes = outcomes.into_iter();
                    for (job, size) in jobs.into_iter().zip(sizes) {
                        let _ = job.reply.send(Ok(outcomes.by_ref().take(size).collect()));
                    }
                }
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), %workspace, "committing tracking messages failed");
                    let message = error.to_string();
                    for job in jobs {
                        let _ = job.reply.send(Err(IngestError::Store(StoreError::Backend(anyhow_error(&message)))));
                    }
                }
            }
        }
    }
}

fn anyhow_error(message: &str) -> anyhow::Error {
    anyhow::anyhow!("committing tracking messages failed: {message}")
}
