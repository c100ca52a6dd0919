//! Throwaway databases for tests: this crate's store suite and the server's API tests.

use anyhow::Context;
use rand::Rng;
use sqlx::{Connection, PgConnection};

/// The server where test databases are created, unless `RAPPORT_TEST_POSTGRES_URL` names another.
const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A uniquely named, empty database that is dropped when the guard is.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates `rapport_test_<random>` on the server named by `RAPPORT_TEST_POSTGRES_URL` (an admin URL whose
    /// user may create databases).
    pub async fn create() -> anyhow::Result<TestDatabase> {
        let admin_url = std::env::var("RAPPORT_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
        let name = format!("rapport_test_{:016x}", rand::thread_rng().r#gen::<u64>());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .with_context(|| format!("connecting to the test server {admin_url} (set RAPPORT_TEST_POSTGRES_URL)"))?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .with_context(|| format!("creating the test database {name}"))?;
        admin.close().await.context("closing the admin connection")?;
        let url = database_url(&admin_url, &name)?;
        Ok(TestDatabase { admin_url, name, url })
    }

    /// The URL of the test database, for [`crate::PostgresStore::connect`] or a server under test.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    /// `Drop` cannot await, and the test's runtime may be shutting down, so the database is dropped from a short-
    /// lived thread with a runtime of its own. `WITH (FORCE)` ends connections that a pool still holds.
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting a runtime to drop the test database")?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await.context("connecting to the test server")?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .context("dropping the test database")?;
                admin.close().await.context("closing the admin connection")
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(database = %self.name, "could not drop a test database: {error:#}")
            }
            Err(_) => tracing::warn!(database = %self.name, "dropping a test database panicked"),
        }
    }
}

/// The admin URL with its database replaced by `name`, keeping credentials, host and query parameters.
fn database_url(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let scheme_end = base.find("://").context("the test server URL has no scheme")? + 3;
    let host_end = base[scheme_end..].find('/').map_or(base.len(), |slash| scheme_end + slash);
    let mut url = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn test_database_urls() {
        let cases = [
            ("postgres://postgres@127.0.0.1:5432/postgres", "postgres://postgres@127.0.0.1:5432/rapport_test_x"),
            ("postgres://u:p@db/admin?sslmode=disable", "postgres://u:p@db/rapport_test_x?sslmode=disable"),
            ("postgres://localhost", "postgres://localhost/rapport_test_x"),
        ];
        for (admin, expected) in cases {
            assert_eq!(database_url(admin, "rapport_test_x").ok().as_deref(), Some(expected), "{admin}");
        }
    }
}
