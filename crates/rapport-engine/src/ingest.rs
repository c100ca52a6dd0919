//! Group commit for tracking messages. Requests hand their messages to one committer task; it takes everything
//! waiting (up to a batch limit), writes each workspace's share in one store transaction, and only then answers
//! every request. A client is acknowledged once its data is durable, and throughput does not pay one transaction
//! (one fsync) per message. Two groups may be under way at once (see `COMMITS_IN_FLIGHT`); the committer owns
//! their tasks and waits for both before it ends.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rapport_domain::WorkspaceId;
use rapport_store::{Store, StoreError, TrackingMessage, TrackingOutcome};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

/// Commits under way at once. With two, the store can prepare one group (parse, serialize, hash: work that needs no
/// database) while the previous one holds the writer; the writes themselves stay one at a time in the store.
const COMMITS_IN_FLIGHT: usize = 2;

/// The least a second commit takes while another is under way.
const MIN_SECOND_COMMIT_MESSAGES: usize = 500;

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
    pub async fn run(self) {
        let IngestWorker { store, mut receiver, pending, config } = self;
        let mut commits = JoinSet::new();
        let mut waiting: VecDeque<Job> = VecDeque::new();
        let mut waiting_messages = 0;
        let mut open = true;
        loop {
            // A group starts when no commit is under way, or as the second one once enough waits to be worth a
            // transaction of its own: splitting a trickle of single calls into two commits would only add commits.
            while !waiting.is_empty()
                && (commits.is_empty()
                    || (commits.len() < COMMITS_IN_FLIGHT && waiting_messages >= MIN_SECOND_COMMIT_MESSAGES))
            {
                let mut jobs = Vec::new();
                let mut messages = 0;
                while let Some(job) = waiting.pop_front() {
                    if !jobs.is_empty() && messages + job.messages.len() > config.max_batch_messages {
                        waiting.push_front(job);
                        break;
                    }
                    messages += job.messages.len();
                    jobs.push(job);
                }
                waiting_messages -= messages;
                let (store, pending) = (Arc::clone(&store), Arc::clone(&pending));
                commits.spawn(async move {
                    commit(store.as_ref(), jobs).await;
                    pending.fetch_sub(messages, Ordering::AcqRel);
                });
            }
            tokio::select! {
                job = receiver.recv(), if open => match job {
                    Some(job) => {
                        waiting_messages += job.messages.len();
                        waiting.push_back(job);
                        while let Ok(job) = receiver.try_recv() {
                            waiting_messages += job.messages.len();
                            waiting.push_back(job);
                        }
                    }
                    None => open = false,
                },
                Some(joined) = commits.join_next(), if !commits.is_empty() => {
                    if let Err(error) = joined {
                        tracing::error!(%error, "a tracking commit task failed");
                    }
                }
                else => break,
            }
        }
        tracing::debug!("ingestion stopped: every sender is gone and the queue is drained");
    }
}

/// Writes one group: per workspace, all jobs' messages in one store call, then splits the outcomes back.
async fn commit(store: &dyn Store, jobs: Vec<Job>) {
    let mut by_workspace: BTreeMap<WorkspaceId, Vec<Job>> = BTreeMap::new();
    for job in jobs {
        by_workspace.entry(job.workspace).or_default().push(job);
    }
    for (workspace, mut jobs) in by_workspace {
        let sizes: Vec<usize> = jobs.iter().map(|job| job.messages.len()).collect();
        let messages: Vec<TrackingMessage> =
            jobs.iter_mut().flat_map(|job| std::mem::take(&mut job.messages)).collect();
        match store.ingest_tracking(workspace, messages).await {
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

fn anyhow_error(message: &str) -> anyhow::Error {
    anyhow::anyhow!("committing tracking messages failed: {message}")
}
