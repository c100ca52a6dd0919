//! Where the server keeps its data and how it is reached. Built from the command line and the environment
//! (`RAPPORT_*`), passed explicitly — there are no global settings.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A value that must never reach a log: `Debug` and `Display` print a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Which database to use: the embedded SQLite file in the data directory unless a URL says otherwise.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    /// `postgres://…` selects PostgreSQL, `sqlite://PATH` a SQLite file elsewhere. May hold a password.
    pub database_url: Option<Secret>,
}

/// Credentials applied on first start (and the admin token on every start).
#[derive(Debug, Clone, Default)]
pub struct AdminConfig {
    pub token: Option<Secret>,
    pub email: Option<String>,
    pub password: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub store: StoreConfig,
    pub bind: SocketAddr,
    pub admin: AdminConfig,
    /// Hosted forms' rate limit and client address.
    pub forms: rapport_http::forms::FormsConfig,
}
