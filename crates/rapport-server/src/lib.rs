//! The `rapport` binary's library half: configuration, store selection, first-start bootstrap and the supervised
//! server, so that tests start exactly what the binary starts.

#![forbid(unsafe_code)]

pub mod bench;
pub mod bench_import;
pub mod bench_tracking;
pub mod bootstrap;
pub mod config;
pub mod export;
pub mod import;
mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use rapport_engine::{IngestConfig, Ingestor};
use rapport_http::AppState;
use rapport_store::Store;
use tokio::net::TcpListener;

pub use store::open_store;

/// A server bound to its address and serving until `shutdown` resolves.
pub struct Server {
    listener: TcpListener,
    store: Arc<dyn Store>,
    ingest: IngestConfig,
}

impl Server {
    /// Binds first, so that port 0 resolves to a real port before anything is served.
    pub async fn bind(bind: SocketAddr, store: Arc<dyn Store>) -> anyhow::Result<Server> {
        Server::bind_with(bind, store, IngestConfig::default()).await
    }

    pub async fn bind_with(bind: SocketAddr, store: Arc<dyn Store>, ingest: IngestConfig) -> anyhow::Result<Server> {
        let listener = TcpListener::bind(bind).await.with_context(|| format!("binding {bind}"))?;
        Ok(Server { listener, store, ingest })
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listener.local_addr().context("reading the bound address")
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish. The ingestion committer runs beside
    /// the HTTP server and ends after it: once the router (holding the last `Ingestor`) is gone and everything
    /// accepted has been committed.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (ingestor, committer) = Ingestor::new(self.store.clone(), self.ingest);
        let router = rapport_http::router(AppState { store: self.store, ingestor });
        let http = async move {
            axum::serve(self.listener, router).with_graceful_shutdown(shutdown).await.context("serving HTTP")
        };
        let (served, ()) = tokio::join!(http, committer.run());
        served
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
