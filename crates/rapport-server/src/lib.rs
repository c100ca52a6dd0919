//! The `rapport` binary's library half: configuration, store selection, first-start bootstrap and the supervised
//! server, so that tests start exactly what the binary starts.

#![forbid(unsafe_code)]

pub mod bench;
pub mod bootstrap;
pub mod config;
mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use rapport_http::AppState;
use rapport_store::Store;
use tokio::net::TcpListener;

pub use store::open_store;

/// A server bound to its address and serving until `shutdown` resolves.
pub struct Server {
    listener: TcpListener,
    store: Arc<dyn Store>,
}

impl Server {
    /// Binds first, so that port 0 resolves to a real port before anything is served.
    pub async fn bind(bind: SocketAddr, store: Arc<dyn Store>) -> anyhow::Result<Server> {
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding {bind}"))?;
        Ok(Server { listener, store })
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listener
            .local_addr()
            .context("reading the bound address")
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = rapport_http::router(AppState { store: self.store });
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")
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
