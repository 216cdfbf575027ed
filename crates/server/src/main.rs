//! `heeldiary-server`: runs the sync server (`serve`) and the clinic's admin commands (`admin`).

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use chrono::Utc;
use clap::{Args, Parser, Subcommand, ValueEnum};
use heeldiary_server::admin::{self, DEFAULT_CODE_HOURS};
use heeldiary_server::storage::{
    ErasureRecord, PoolOptions, PostgresStorage, SqliteStorage, Storage,
};
use tracing_subscriber::EnvFilter;
use uuid::Uuid;

/// How long in-flight HTTPS requests get to finish after a shutdown signal.
const TLS_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// heeldiary sync server.
#[derive(Parser)]
#[command(name = "heeldiary-server", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    backend: BackendArgs,
    #[command(subcommand)]
    command: Command,
}

/// Where the data lives. Every command takes the same options. No `Debug`: the database URL
/// may hold a password.
#[derive(Args)]
struct BackendArgs {
    /// Directory of the server's SQLite database (created if missing).
    #[arg(
        long,
        global = true,
        env = "HEELDIARY_DATA",
        default_value = "./heeldiary-data",
        value_name = "DIR"
    )]
    data: PathBuf,
    /// PostgreSQL connection URL (postgres://USER@HOST/DB): run on PostgreSQL instead of the
    /// SQLite files of --data.
    #[arg(
        long,
        global = true,
        env = "HEELDIARY_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    database_url: Option<String>,
    /// Most PostgreSQL connections open at once (with --database-url).
    #[arg(
        long,
        global = true,
        env = "HEELDIARY_DB_POOL_SIZE",
        default_value_t = PoolOptions::default().max_size,
        value_name = "N"
    )]
    db_pool_size: usize,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Manage patients, enrolment codes and devices.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// PEM certificate chain: serve HTTPS (needs --tls-key).
    #[arg(long, requires = "tls_key", value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// Log line format (logs go to stderr; RUST_LOG filters them).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Most connections open at once; more wait until one closes.
    #[arg(long, default_value_t = heeldiary_server::limits::DEFAULT_MAX_CONNECTIONS, value_name = "N")]
    max_connections: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create a patient and print its id and a single-use enrolment code.
    AddPatient {
        /// A label for the clinic's own reference.
        #[arg(long)]
        label: Option<String>,
        /// Hours the code stays valid.
        #[arg(long, default_value_t = DEFAULT_CODE_HOURS)]
        expires_hours: u32,
        /// Print JSON (`patient_id`, `code`, `expires_at`).
        #[arg(long)]
        json: bool,
    },
    /// Issue an enrolment code for a patient's next device.
    NewCode {
        /// The patient id.
        #[arg(long)]
        patient: Uuid,
        /// Hours the code stays valid.
        #[arg(long, default_value_t = DEFAULT_CODE_HOURS)]
        expires_hours: u32,
        /// Print JSON (`patient_id`, `code`, `expires_at`).
        #[arg(long)]
        json: bool,
    },
    /// Revoke a device's token at once.
    RevokeDevice {
        /// The patient id.
        #[arg(long)]
        patient: Uuid,
        /// The device id.
        #[arg(long)]
        device: Uuid,
    },
    /// List a patient's devices.
    ListDevices {
        /// The patient id.
        #[arg(long)]
        patient: Uuid,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Declare the data restored from a backup (run it after the restore, before serving): a
    /// new feed epoch makes every device push again what the restore lost and read the feed
    /// again.
    MarkRestored {
        /// Print JSON (`epoch`).
        #[arg(long)]
        json: bool,
    },
    /// Erase every row of a patient on the server (diary, devices, codes), leaving a record that
    /// an erasure happened (when, by whom, row counts; no personal data). The patient's devices
    /// are told on their next sync and keep their own diaries.
    ErasePatient {
        /// The patient id.
        #[arg(long)]
        patient: Uuid,
        /// Who erases (an operator name for the record).
        #[arg(long, env = "USER", default_value = "admin")]
        by: String,
        /// Confirm: the erasure cannot be undone.
        #[arg(long)]
        yes: bool,
        /// Print JSON (the erasure record).
        #[arg(long)]
        json: bool,
    },
}

/// The storage backends this binary can run on.
enum Backend {
    Sqlite(SqliteStorage),
    Postgres(PostgresStorage),
}

impl BackendArgs {
    async fn open(&self) -> anyhow::Result<Backend> {
        if let Some(url) = &self.database_url {
            if self.db_pool_size == 0 {
                bail!("--db-pool-size must be at least 1");
            }
            let options = PoolOptions {
                max_size: self.db_pool_size,
                ..PoolOptions::default()
            };
            // The URL may hold a password: name only the database in the message.
            let storage = PostgresStorage::connect(url, &options)
                .await
                .with_context(|| format!("cannot open the PostgreSQL database {}", db_name(url)))?;
            return Ok(Backend::Postgres(storage));
        }
        let storage = SqliteStorage::open_dir(&self.data)
            .await
            .with_context(|| format!("cannot open the database in {}", self.data.display()))?;
        Ok(Backend::Sqlite(storage))
    }

    /// The option that selects this backend, for the hints printed to the operator. A URL with
    /// a password is not printed: the hint points at the environment variable instead.
    fn hint(&self) -> String {
        match &self.database_url {
            Some(url) if has_password(url) => {
                "--database-url \"$HEELDIARY_DATABASE_URL\"".to_string()
            }
            Some(url) => format!("--database-url {}", shell_word(url)),
            None => format!("--data {}", shell_word(&self.data.display().to_string())),
        }
    }
}

/// Whether a database URL carries a password (or cannot be read, which counts as one).
fn has_password(url: &str) -> bool {
    url.parse::<tokio_postgres::Config>()
        .map_or(true, |c| c.get_password().is_some())
}

/// The database name of a URL, for messages; never the URL itself.
fn db_name(url: &str) -> String {
    url.parse::<tokio_postgres::Config>()
        .ok()
        .and_then(|c| c.get_dbname().map(|d| format!("`{d}`")))
        .unwrap_or_else(|| "(given by --database-url)".into())
}

/// `text` as one shell word: as it is when that is safe, else single-quoted.
fn shell_word(text: &str) -> String {
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-:@".contains(c))
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (default_level, format) = match &cli.command {
        Command::Serve(args) => ("info", args.log_format),
        Command::Admin(_) => ("warn", LogFormat::Text),
    };
    init_logs(default_level, format);
    let backend = cli.backend.open().await?;
    match backend {
        Backend::Sqlite(storage) => run(storage, cli).await,
        Backend::Postgres(storage) => run(storage, cli).await,
    }
}

fn init_logs(default_level: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}

async fn run<S: Storage>(storage: S, cli: Cli) -> anyhow::Result<()> {
    let hint = cli.backend.hint();
    match cli.command {
        Command::Serve(args) => serve(storage, args, &hint).await,
        Command::Admin(command) => run_admin(&storage, command, &hint).await,
    }
}

async fn serve<S: Storage>(storage: S, args: ServeArgs, hint: &str) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            // Chosen explicitly so that no other provider linked in can change it.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .with_context(|| {
                    format!(
                        "cannot load TLS certificate {} and key {}",
                        cert.display(),
                        key.display()
                    )
                })?;
            Some(config)
        }
        _ => None,
    };
    let url = format!("{}://{addr}", if tls.is_some() { "https" } else { "http" });
    let mut out = std::io::stdout().lock();
    writeln!(out, "heeldiary-server listening on {url}")?;
    writeln!(out, "next steps:")?;
    writeln!(
        out,
        "  1. create a patient and its enrolment code:  heeldiary-server admin add-patient {hint}"
    )?;
    writeln!(
        out,
        "  2. on the patient's device:                  heeldiary enroll --server {url} --code CODE"
    )?;
    out.flush()?;
    drop(out);
    tracing::info!(%addr, tls = tls.is_some(), "serving");

    let app = heeldiary_server::app(storage);
    match tls {
        None => {
            let listener = heeldiary_server::limits::CappedListener::new(
                tokio::net::TcpListener::from_std(listener)?,
                args.max_connections,
            );
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown_signal())
                .await?
        }
        Some(config) => {
            let handle = axum_server::Handle::new();
            tokio::spawn({
                let handle = handle.clone();
                async move {
                    shutdown_signal().await;
                    handle.graceful_shutdown(Some(TLS_SHUTDOWN_GRACE));
                }
            });
            axum_server::from_tcp_rustls(listener, config)
                .handle(handle)
                .serve(app.into_make_service())
                .await?
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM; the server then stops accepting and finishes what it has.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
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
    tracing::info!("shutting down: finishing requests in flight");
}

async fn run_admin<S: Storage>(
    storage: &S,
    command: AdminCommand,
    hint: &str,
) -> anyhow::Result<()> {
    let now = Utc::now();
    match command {
        AdminCommand::AddPatient {
            label,
            expires_hours,
            json,
        } => {
            let issued = admin::add_patient(storage, label, expires_hours, now).await?;
            print_code(&issued, json, hint)
        }
        AdminCommand::NewCode {
            patient,
            expires_hours,
            json,
        } => {
            let issued = admin::new_code_for(storage, patient, expires_hours, now).await?;
            print_code(&issued, json, hint)
        }
        AdminCommand::RevokeDevice { patient, device } => {
            admin::revoke_device(storage, patient, device, now).await?;
            println!("revoked device {device} of patient {patient}");
            Ok(())
        }
        AdminCommand::MarkRestored { json } => {
            let epoch = admin::mark_restored(storage, now).await?;
            if json {
                println!("{}", serde_json::json!({ "epoch": epoch }));
            } else {
                println!("new feed epoch {epoch}: every device pushes again what it has and reads the feed again on its next sync");
            }
            Ok(())
        }
        AdminCommand::ErasePatient {
            patient,
            by,
            yes,
            json,
        } => {
            if !yes {
                bail!(
                    "erasing patient {patient} removes its data from the server for good: \
                     add --yes to confirm"
                );
            }
            let record = admin::erase_patient(storage, patient, &by, now).await?;
            print_erasure(&record, json)
        }
        AdminCommand::ListDevices { patient, json } => {
            let devices = admin::list_devices(storage, patient).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&devices)?);
            } else if devices.is_empty() {
                println!("patient {patient} has no device yet");
            } else {
                for d in devices {
                    let status = match d.revoked_at {
                        Some(at) => format!("revoked {}", at.format("%Y-%m-%d %H:%M UTC")),
                        None => "active".into(),
                    };
                    println!(
                        "{}  {}  enrolled {}  {status}  {}",
                        d.device_id,
                        d.role,
                        d.enrolled_at.format("%Y-%m-%d %H:%M UTC"),
                        d.label.as_deref().unwrap_or("")
                    );
                }
            }
            Ok(())
        }
    }
}

fn print_erasure(record: &ErasureRecord, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(record)?);
        return Ok(());
    }
    let total: u64 = record.rows_removed.values().sum();
    println!(
        "erased patient {}: {total} rows removed ({})",
        record.patient_id,
        record
            .rows_removed
            .iter()
            .map(|(table, n)| format!("{table} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "erasure record {} kept (at {}, by {}); the patient's devices are told on their next sync",
        record.erasure_id,
        record.erased_at.format("%Y-%m-%d %H:%M:%S UTC"),
        record.erased_by
    );
    Ok(())
}

fn print_code(issued: &admin::IssuedCode, json: bool, hint: &str) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(issued)?);
    } else {
        println!("{issued}");
        println!();
        println!(
            "on the patient's device:  heeldiary enroll --server URL --code {}",
            issued.code
        );
        println!(
            "another device later:     heeldiary-server admin new-code --patient {} {hint}",
            issued.patient_id
        );
    }
    Ok(())
}
