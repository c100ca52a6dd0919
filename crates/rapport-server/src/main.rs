//! `rapport`: the server and its operator commands.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use rapport_csv::export::{ExportControl, ExportScope, export_contacts};
use rapport_domain::{BoundedText, Role, SegmentId};
use rapport_engine::audience::AudienceConfig;
use rapport_http::auth::mint_token;
use rapport_http::forms::{FormsConfig, RateLimit};
use rapport_server::bench::{self, BenchConfig};
use rapport_server::bench_import::{self, ImportBenchConfig};
use rapport_server::bench_segments::{self, SegmentsBenchConfig};
use rapport_server::bench_tracking::{self, TrackingBenchConfig};
use rapport_server::bootstrap::bootstrap;
use rapport_server::config::{AdminConfig, Secret, ServeConfig, StoreConfig, parse_utc_offset};
use rapport_server::import::{ImportError, ImportOptions, import_contacts};
use rapport_server::{Server, open_store, shutdown_signal};
use rapport_store::NewApiKey;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "rapport", version, about = "Rapport: customer operations for B2B teams")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: REST API, tracking and console.
    Serve(ServeArgs),
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Import records from a file.
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// Export records as CSV to stdout.
    Export {
        #[command(subcommand)]
        command: ExportCommand,
    },
    /// Measure Rapport's hot paths on this machine and print each figure beside its target.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Args, Clone)]
struct StoreArgs {
    /// Where Rapport keeps its embedded database and files.
    #[arg(long, env = "RAPPORT_DATA_DIR", default_value = "./rapport-data")]
    data_dir: PathBuf,
    /// `postgres://…` for PostgreSQL; default: SQLite inside the data directory.
    #[arg(long, env = "RAPPORT_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

impl StoreArgs {
    fn config(&self) -> StoreConfig {
        StoreConfig { data_dir: self.data_dir.clone(), database_url: self.database_url.clone().map(Secret::new) }
    }
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address to listen on.
    #[arg(long, env = "RAPPORT_BIND", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Form submissions one client address may send at once (hosted forms' spam limit).
    #[arg(long, env = "RAPPORT_FORMS__RATE_LIMIT_BURST", default_value_t = 10)]
    forms_rate_limit_burst: u32,
    /// Form submissions per minute one client address may send after its burst.
    #[arg(long, env = "RAPPORT_FORMS__RATE_LIMIT_PER_MINUTE", default_value_t = 10)]
    forms_rate_limit_per_minute: u32,
    /// Take form visitors' addresses from the first X-Forwarded-For hop. Only behind a reverse proxy that sets it.
    #[arg(long, env = "RAPPORT_FORMS__TRUST_FORWARDED_FOR")]
    forms_trust_forwarded_for: bool,
    /// The time zone segments count calendar days in ("today", "last 30 days"), as an offset from UTC.
    #[arg(long, env = "RAPPORT_UTC_OFFSET", default_value = "+00:00", value_parser = parse_utc_offset)]
    timezone_offset: i32,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an API key and print it (it is shown only once).
    Create {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, default_value = "default")]
        workspace: String,
        #[arg(long)]
        name: String,
        /// owner, admin, marketer, sales_manager, sales_rep or viewer.
        #[arg(long, default_value = "admin")]
        role: String,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Contacts from a CSV file (UTF-8 or GBK), matched by user id, email or phone. See docs/import-export.md.
    Contacts(ImportContactsArgs),
}

#[derive(Args)]
struct ImportContactsArgs {
    /// The CSV file; its first row names the columns.
    file: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
    #[arg(long, default_value = "default")]
    workspace: String,
    /// COLUMN=FIELD, e.g. `邮箱=email` or `预算=fields.budget`; repeat per column. Without it, columns whose
    /// header names a field are imported.
    #[arg(long = "map", value_name = "COLUMN=FIELD")]
    mappings: Vec<String>,
    /// Read the file in this encoding (utf-8, gbk, …) instead of detecting it.
    #[arg(long)]
    encoding: Option<String>,
    /// Show the first rows as they would be imported and check every row; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Write every error (row, line, column, value, reason) to this CSV file.
    #[arg(long, value_name = "FILE")]
    errors: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ExportCommand {
    /// All contacts, or one segment's members, as CSV (UTF-8 with a byte order mark, so Excel shows Chinese
    /// correctly).
    Contacts {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, default_value = "default")]
        workspace: String,
        /// Only the members of this segment (its id), in id order.
        #[arg(long)]
        segment: Option<i64>,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Contacts over HTTP: batch upserts, look-up by email, first page of the list.
    Contacts {
        /// A `postgres://` URL of an empty database to measure PostgreSQL; default: SQLite in a temporary directory.
        #[arg(long)]
        database_url: Option<String>,
        /// How many contacts to load.
        #[arg(long, default_value_t = 1_000_000)]
        contacts: usize,
        /// Contacts per batch request.
        #[arg(long, default_value_t = 1_000)]
        batch: usize,
        /// Concurrent batch requests.
        #[arg(long, default_value_t = 2)]
        concurrency: usize,
        /// Look-ups by email to time.
        #[arg(long, default_value_t = 10_000)]
        lookups: usize,
    },
    /// `rapport import contacts` on a generated CSV file: rows per second and peak memory.
    Import {
        /// A `postgres://` URL of an empty database to measure PostgreSQL; default: SQLite in a temporary directory.
        #[arg(long)]
        database_url: Option<String>,
        /// How many rows the generated file holds.
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
    },
    /// The audience engine: a five-condition segment built from scratch, event acknowledgement to
    /// `segment_entered` while events flow, memory per contact, restart.
    Segments {
        /// A `postgres://` URL of an empty database to measure PostgreSQL; default: SQLite in a temporary directory.
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, default_value_t = 1_000_000)]
        contacts: usize,
        #[arg(long, default_value_t = 50_000_000)]
        events: usize,
        /// Active segments besides the measured ones.
        #[arg(long, default_value_t = 200)]
        segments: usize,
        /// Background events per second while latency is measured.
        #[arg(long, default_value_t = 10_000)]
        rate: usize,
        /// Latency samples.
        #[arg(long, default_value_t = 300)]
        samples: usize,
    },
    /// The tracking API: `/v1/batch` events per second, single `/v1/track` requests per second and latency, bytes
    /// stored per event.
    Tracking {
        /// A `postgres://` URL of an empty database to measure PostgreSQL; default: SQLite in a temporary directory.
        #[arg(long)]
        database_url: Option<String>,
        /// Events sent through `/v1/batch`.
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        /// Messages per batch request.
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Concurrent clients (connections).
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Single `/v1/track` requests.
        #[arg(long, default_value_t = 100_000)]
        requests: usize,
        /// Distinct anonymous visitors the events come from.
        #[arg(long, default_value_t = 50_000)]
        visitors: usize,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("RAPPORT_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            // `rapport import` exits with 2 when nothing could be imported (see docs/import-export.md).
            let code = error.downcast_ref::<ImportError>().map_or(1, ImportError::exit_code);
            ExitCode::from(code)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let admin = AdminConfig {
                token: std::env::var("RAPPORT_ADMIN_TOKEN").ok().filter(|t| !t.is_empty()).map(Secret::new),
                email: std::env::var("RAPPORT_ADMIN_EMAIL").ok().filter(|e| !e.is_empty()),
                password: std::env::var("RAPPORT_ADMIN_PASSWORD").ok().filter(|p| !p.is_empty()).map(Secret::new),
            };
            let forms = FormsConfig {
                rate_limit: RateLimit {
                    burst: args.forms_rate_limit_burst,
                    per_minute: args.forms_rate_limit_per_minute,
                },
                trust_forwarded_for: args.forms_trust_forwarded_for,
            };
            let config = ServeConfig {
                store: args.store.config(),
                bind: args.bind,
                admin,
                forms,
                utc_offset_seconds: args.timezone_offset,
            };
            serve(config).await
        }
        Command::Keys { command: KeysCommand::Create { store, workspace, name, role } } => {
            create_key(&store.config(), &workspace, &name, &role).await
        }
        Command::Bench { command: BenchCommand::Contacts { database_url, contacts, batch, concurrency, lookups } } => {
            let config =
                BenchConfig { database_url: database_url.map(Secret::new), contacts, batch, concurrency, lookups };
            bench::contacts(config).await
        }
        Command::Bench { command: BenchCommand::Import { database_url, rows } } => {
            let config = ImportBenchConfig { database_url: database_url.map(Secret::new), rows };
            bench_import::import(config).await
        }
        Command::Bench {
            command: BenchCommand::Segments { database_url, contacts, events, segments, rate, samples },
        } => {
            let database_url = database_url.map(Secret::new);
            let config = SegmentsBenchConfig { database_url, contacts, events, segments, rate, samples };
            bench_segments::segments(config).await
        }
        Command::Bench {
            command: BenchCommand::Tracking { database_url, events, batch, concurrency, requests, visitors },
        } => {
            let config = TrackingBenchConfig {
                database_url: database_url.map(Secret::new),
                events,
                batch,
                concurrency,
                requests,
                visitors,
            };
            bench_tracking::tracking(config).await
        }
        Command::Import { command: ImportCommand::Contacts(args) } => {
            let options = ImportOptions {
                file: args.file,
                workspace: args.workspace,
                mappings: args.mappings,
                encoding: args.encoding,
                dry_run: args.dry_run,
                errors_file: args.errors,
                progress: true,
            };
            let store = open_store(&args.store.config()).await.map_err(ImportError::Setup)?;
            import_contacts(store, &options).await?;
            Ok(())
        }
        Command::Export { command: ExportCommand::Contacts { store, workspace, segment } } => {
            let store = open_store(&store.config()).await?;
            let workspace = store
                .workspace_by_slug(&workspace)
                .await
                .context("looking up the workspace")?
                .with_context(|| format!("no workspace {workspace:?} (run `rapport serve` once to create `default`)"))?
                .id;
            let control = Arc::new(ExportControl::default());
            let scope = segment.map_or(ExportScope::All, |segment| ExportScope::Segment(SegmentId::new(segment)));
            let written = export_contacts(store, workspace, scope, std::io::stdout(), control).await?;
            eprintln!("Exported {written} contacts");
            Ok(())
        }
    }
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let store = open_store(&config.store).await?;
    let report = bootstrap(store.as_ref(), &config.admin).await?;
    for line in report.lines() {
        println!("{line}");
    }
    let server = Server::bind(config.bind, store.clone())
        .await?
        .with_jobs_dir(config.store.data_dir.join("jobs"))
        .with_forms(config.forms)
        .with_audience(AudienceConfig { utc_offset: config.utc_offset_seconds, ..AudienceConfig::default() });
    // Installed before the address is announced, so whoever waits for that line may stop us right after it.
    let shutdown = shutdown_signal()?;
    let address = server.local_addr()?;
    tracing::info!(%address, backend = store.backend(), "serving");
    println!("Rapport is listening on http://{address}");
    server.serve(shutdown).await
}

async fn create_key(store: &StoreConfig, workspace: &str, name: &str, role: &str) -> anyhow::Result<()> {
    let role = Role::parse(role).with_context(|| {
        format!("unknown role {role:?}: use owner, admin, marketer, sales_manager, sales_rep or viewer")
    })?;
    let name = BoundedText::parse(name, 100).map_err(|error| anyhow::anyhow!("--name {error}"))?;
    let store = open_store(store).await?;
    let workspace = store
        .workspace_by_slug(workspace)
        .await?
        .with_context(|| format!("no workspace {workspace:?} (run `rapport serve` once to create `default`)"))?;
    let minted = mint_token();
    let key = NewApiKey { name, role, prefix: minted.prefix, token_hash: minted.hash };
    store.create_api_key(workspace.id, key).await?;
    println!("{}", minted.token);
    Ok(())
}
