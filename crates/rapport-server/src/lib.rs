//! The `rapport` binary's library half: configuration, store selection, first-start bootstrap and the supervised
//! server, so that tests start exactly what the binary starts.

#![forbid(unsafe_code)]

pub mod bench;
pub mod bench_import;
pub mod bench_segments;
pub mod bench_tracking;
pub mod bootstrap;
pub mod config;
pub mod import;
mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use rapport_engine::audience::{Audience, AudienceConfig};
use rapport_engine::{IngestConfig, Ingestor, JobFiles, Jobs};
use rapport_http::AppState;
use rapport_http::forms::FormsConfig;
use rapport_store::Store;
use tokio::net::TcpListener;

pub use store::open_store;

/// A server bound to its address and serving until `shutdown` resolves.
pub struct Server {
    listener: TcpListener,
    store: Arc<dyn Store>,
    ingest: IngestConfig,
    jobs_dir: Option<PathBuf>,
    forms: FormsConfig,
    audience: AudienceConfig,
}

impl Server {
    /// Binds first, so that port 0 resolves to a real port before anything is served.
    pub async fn bind(bind: SocketAddr, store: Arc<dyn Store>) -> anyhow::Result<Server> {
        Server::bind_with(bind, store, IngestConfig::default()).await
    }

    pub async fn bind_with(bind: SocketAddr, store: Arc<dyn Store>, ingest: IngestConfig) -> anyhow::Result<Server> {
        let listener = TcpListener::bind(bind).await.with_context(|| format!("binding {bind}"))?;
        Ok(Server {
            listener,
            store,
            ingest,
            jobs_dir: None,
            forms: FormsConfig::default(),
            audience: AudienceConfig::default(),
        })
    }

    /// Where background jobs keep their files (`<data dir>/jobs` for `rapport serve`). Without it, a temporary
    /// directory that is removed when the server stops.
    pub fn with_jobs_dir(mut self, dir: PathBuf) -> Server {
        self.jobs_dir = Some(dir);
        self
    }

    /// How hosted forms limit and identify their visitors.
    pub fn with_forms(mut self, forms: FormsConfig) -> Server {
        self.forms = forms;
        self
    }

    /// How the audience engine counts days (the workspace time zone) and follows changes.
    pub fn with_audience(mut self, audience: AudienceConfig) -> Server {
        self.audience = audience;
        self
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listener.local_addr().context("reading the bound address")
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish. The ingestion committer runs beside
    /// the HTTP server and ends after it: once the router (holding the last `Ingestor`) is gone and everything
    /// accepted has been committed. The job runner and the audience engine run beside both and stop with the HTTP
    /// server; a job it was running is failed as interrupted at the next start, and the engine catches up with
    /// what changed meanwhile when it loads again.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (_temporary, jobs_dir) = match self.jobs_dir {
            Some(dir) => (None, dir),
            None => {
                let temporary = tempfile::tempdir().context("creating a temporary job directory")?;
                let dir = temporary.path().to_owned();
                (Some(temporary), dir)
            }
        };
        let jobs = Jobs::new(self.store.clone(), JobFiles::create(jobs_dir)?);
        let runner = jobs.runner();
        let (ingestor, committer) = Ingestor::new(self.store.clone(), self.ingest);
        let (audience, engine) = Audience::new(self.store.clone(), self.audience);
        let router = rapport_http::router(AppState::new(self.store, ingestor, jobs, self.forms, audience));
        // `true` once the server is stopping, because of the signal or because the HTTP server ended.
        let (stopping, stopped) = tokio::sync::watch::channel(false);
        let on_signal = {
            let stopped = stopped.clone();
            let stopping = &stopping;
            async move {
                tokio::select! {
                    () = shutdown => {
                        stopping.send_replace(true);
                    }
                    () = wait_stopped(stopped) => {}
                }
            }
        };
        let http = {
            let stopped = stopped.clone();
            let stopping = &stopping;
            async move {
                // Connection info gives hosted forms the client address their rate limit is keyed by.
                let service = router.into_make_service_with_connect_info::<SocketAddr>();
                let served = axum::serve(self.listener, service)
                    .with_graceful_shutdown(wait_stopped(stopped))
                    .await
                    .context("serving HTTP");
                stopping.send_replace(true);
                served
            }
        };
        let (served, (), (), (), ()) = tokio::join!(
            http,
            committer.run(),
            runner.run(wait_stopped(stopped.clone())),
            engine.run(wait_stopped(stopped.clone())),
            on_signal
        );
        served
    }
}

async fn wait_stopped(mut stopping: tokio::sync::watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// Listens for SIGINT and SIGTERM now and returns a future that resolves on the first of them.
///
/// The handlers are installed before this returns, so a caller that announces it is ready afterwards can be
/// stopped cleanly the moment it says so: a signal that arrives before the future is first polled is not lost.
pub fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            if let Err(error) = tokio::signal::ctrl_c().await {
                tracing::error!(%error, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        })
    }
}
