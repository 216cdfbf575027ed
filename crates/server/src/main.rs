//! `heeldiary-server`: runs the sync server (`serve`) and the clinic's admin commands (`admin`).

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use chrono::NaiveDate;
use chrono::Utc;
use clap::{Args, Parser, Subcommand, ValueEnum};
use heeldiary_server::admin::{self, DEFAULT_CODE_HOURS};
use heeldiary_server::export::{self, ExportSettings, Format, Options, Progress};
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
    /// Manage patients, enrolment codes, devices, providers and analysts.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Export the diaries of patients who consented to research, de-identified unless
    /// --identified, into a new folder.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
struct ExportArgs {
    /// File format.
    #[arg(long, value_enum)]
    format: ExportFormat,
    /// Folder to create (it must not exist, or be empty); written whole or not at all.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Only entries changed on or after this day (UTC); also lists entries deleted since.
    #[arg(long, value_name = "YYYY-MM-DD")]
    since: Option<NaiveDate>,
    /// Only entries changed on or before this day (UTC).
    #[arg(long, value_name = "YYYY-MM-DD")]
    until: Option<NaiveDate>,
    /// Keep patient ids, entry ids, calendar dates and notes (recorded in the export log).
    #[arg(long)]
    identified: bool,
    /// The export key (made on first use); default: export.key in --data.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Print a one-line JSON summary instead of the progress bar and text.
    #[arg(long)]
    json: bool,
}

/// The formats `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExportFormat {
    Csv,
    Ndjson,
    Parquet,
    Meds,
    Fhir,
}

impl From<ExportFormat> for Format {
    fn from(f: ExportFormat) -> Format {
        match f {
            ExportFormat::Csv => Format::Csv,
            ExportFormat::Ndjson => Format::Ndjson,
            ExportFormat::Parquet => Format::Parquet,
            ExportFormat::Meds => Format::Meds,
            ExportFormat::Fhir => Format::Fhir,
        }
    }
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
    /// The export key of `GET /v1/export` (made on first use); default: export.key in --data.
    #[arg(long, value_name = "FILE")]
    export_key_file: Option<PathBuf>,
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
    /// Create an analyst account and print its token (for `GET /v1/export`).
    AddAnalyst {
        /// A name for the export log ("Study 1").
        #[arg(long)]
        name: String,
        /// Print JSON (`analyst_id`, `name`, `token`).
        #[arg(long)]
        json: bool,
    },
    /// Revoke an analyst's token at once.
    RevokeAnalyst {
        /// The analyst id.
        #[arg(long)]
        analyst: Uuid,
    },
    /// Show the latest exports: who, how, which format, how many patients.
    ExportLog {
        /// How many lines.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
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
    /// Create a provider account: prints its id, the share code patients type to share with it,
    /// and a single-use setup link (24 hours) where the provider chooses a password.
    AddProvider {
        /// The name patients see, e.g. "Dr Alpha".
        #[arg(long)]
        name: String,
        /// The provider's sign-in email.
        #[arg(long)]
        email: String,
        /// The server's public URL (https://clinic.example), to print the setup link in full.
        #[arg(long, env = "HEELDIARY_PUBLIC_URL", value_name = "URL")]
        public_url: Option<String>,
        /// Print JSON (`provider_id`, `share_code`, `setup_url`, ...).
        #[arg(long)]
        json: bool,
    },
    /// Give a provider a new share code; the old one stops working, existing shares stay.
    RotateShareCode {
        /// The provider id.
        #[arg(long)]
        provider: Uuid,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disable a provider: sign-in, sessions, API tokens and shares stop working at once.
    DisableProvider {
        /// The provider id.
        #[arg(long)]
        provider: Uuid,
    },
    /// List the provider accounts.
    ListProviders {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Issue an API token for a provider's EHR integration (`Authorization: Bearer TOKEN` on
    /// `/v1/provider/...`); shown once, stored hashed.
    ProviderToken {
        /// The provider id.
        #[arg(long)]
        provider: Uuid,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a provider API token at once.
    RevokeProviderToken {
        /// The token id (printed by provider-token).
        #[arg(long)]
        token: Uuid,
    },
    /// Show who read a patient's diary, and when (the access log the patient sees too).
    Audit {
        /// The patient id.
        #[arg(long)]
        patient: Uuid,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Give a provider time-limited access to a patient's diary without a share; it is marked
    /// as break-glass in the access log the patient reads, and ends by itself.
    BreakGlass {
        /// The provider id.
        #[arg(long)]
        provider: Uuid,
        /// The patient id.
        #[arg(long)]
        patient: Uuid,
        /// Why access is needed.
        #[arg(long)]
        reason: String,
        /// Minutes the access lasts (at most a day).
        #[arg(long)]
        minutes: u32,
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

/// A bulk export or a first sync allocates and frees millions of short-lived values on several
/// threads at once; mimalloc's per-thread free lists make that a fraction of the system
/// allocator's cost.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (default_level, format) = match &cli.command {
        Command::Serve(args) => ("info", args.log_format),
        Command::Admin(_) | Command::Export(_) => ("warn", LogFormat::Text),
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
        Command::Serve(args) => serve(storage, args, &hint, &cli.backend.data).await,
        Command::Admin(command) => run_admin(&storage, command, &hint).await,
        Command::Export(args) => run_export(&storage, args, &cli.backend.data).await,
    }
}

async fn serve<S: Storage>(
    storage: S,
    args: ServeArgs,
    hint: &str,
    data: &std::path::Path,
) -> anyhow::Result<()> {
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

    let options = heeldiary_server::AppOptions {
        web: heeldiary_server::web::WebOptions {
            secure_cookies: tls.is_some(),
            ..Default::default()
        },
        export: ExportSettings {
            key_file: Some(
                args.export_key_file
                    .clone()
                    .unwrap_or_else(|| data.join(export::KEY_FILE_NAME)),
            ),
            https: tls.is_some(),
        },
    };
    // The caller's address goes into the access log of each provider read.
    let app = heeldiary_server::app_with(storage, options)
        .into_make_service_with_connect_info::<heeldiary_server::web::PeerAddr>();
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
                .serve(app)
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
        AdminCommand::AddAnalyst { name, json } => {
            let issued = admin::add_analyst(storage, name, now).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&issued)?);
            } else {
                println!("{issued}");
                println!();
                println!("export with:  curl -H \"Authorization: Bearer TOKEN\" SERVER/v1/export?format=ndjson");
                println!(
                    "revoke with:  heeldiary-server admin revoke-analyst --analyst {} {hint}",
                    issued.analyst_id
                );
            }
            Ok(())
        }
        AdminCommand::RevokeAnalyst { analyst } => {
            admin::revoke_analyst(storage, analyst, now).await?;
            println!("revoked analyst {analyst}");
            Ok(())
        }
        AdminCommand::ExportLog { limit, json } => {
            let log = storage.export_log(limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&log)?);
            } else if log.is_empty() {
                println!("no export yet");
            } else {
                for r in log {
                    println!(
                        "{}  {}  {}  {}{}  {} patients",
                        r.exported_at.format("%Y-%m-%d %H:%M UTC"),
                        r.actor,
                        r.via,
                        r.format,
                        if r.identified { " identified" } else { "" },
                        r.patients
                    );
                }
            }
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
        AdminCommand::AddProvider {
            name,
            email,
            public_url,
            json,
        } => {
            let added =
                admin::add_provider(storage, &name, &email, public_url.as_deref(), now).await?;
            print_json_or(json, &added, || {
                println!("{added}");
                println!();
                println!("give the setup link to the provider; patients share with:  heeldiary share --provider {}", added.share_code);
            })
        }
        AdminCommand::RotateShareCode { provider, json } => {
            let rotated = admin::rotate_share_code(storage, provider).await?;
            print_json_or(json, &rotated, || {
                println!(
                    "new share code of provider {provider}: {}",
                    rotated.share_code
                );
            })
        }
        AdminCommand::DisableProvider { provider } => {
            admin::disable_provider(storage, provider, now).await?;
            println!("disabled provider {provider}");
            Ok(())
        }
        AdminCommand::ListProviders { json } => {
            let providers = admin::list_providers(storage).await?;
            print_json_or(json, &providers, || {
                if providers.is_empty() {
                    println!("no provider yet (heeldiary-server admin add-provider --name NAME --email EMAIL {hint})");
                }
                for p in &providers {
                    let status = match (p.disabled_at, p.has_password) {
                        (Some(at), _) => format!("disabled {}", at.format("%Y-%m-%d %H:%M UTC")),
                        (None, true) => "active".into(),
                        (None, false) => "waiting for setup".into(),
                    };
                    println!("{}  {}  {}  {status}", p.provider_id, p.name, p.email);
                }
            })
        }
        AdminCommand::ProviderToken { provider, json } => {
            let issued = admin::provider_token(storage, provider, now).await?;
            print_json_or(json, &issued, || {
                println!(
                    "token {} (id {}), shown once",
                    issued.token, issued.token_id
                );
            })
        }
        AdminCommand::RevokeProviderToken { token } => {
            admin::revoke_provider_token(storage, token, now).await?;
            println!("revoked provider token {token}");
            Ok(())
        }
        AdminCommand::Audit { patient, json } => {
            let log = admin::audit(storage, patient).await?;
            print_json_or(json, &log, || {
                if log.is_empty() {
                    println!("no provider has read patient {patient}'s diary");
                }
                for r in &log {
                    println!(
                        "{}  {} ({})  {}  from {}{}",
                        r.at.format("%Y-%m-%d %H:%M:%S UTC"),
                        r.provider_name,
                        r.provider_id,
                        r.what,
                        r.address.as_deref().unwrap_or("unknown address"),
                        if r.break_glass { "  BREAK-GLASS" } else { "" }
                    );
                }
            })
        }
        AdminCommand::BreakGlass {
            provider,
            patient,
            reason,
            minutes,
            json,
        } => {
            let grant =
                admin::break_glass(storage, provider, patient, &reason, minutes, now).await?;
            print_json_or(json, &grant, || {
                println!(
                    "provider {provider} may read patient {patient} until {} (break-glass, in the patient's access log)",
                    grant.ends_at.format("%Y-%m-%d %H:%M UTC")
                );
            })
        }
    }
}

/// Prints `value` as JSON, or runs `text` to print it for people.
fn print_json_or<T: serde::Serialize>(
    json: bool,
    value: &T,
    text: impl FnOnce(),
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        text();
    }
    Ok(())
}

/// Shows export progress on a terminal: a bar over the consenting patients.
struct Bar(Option<indicatif::ProgressBar>);

impl Progress for Bar {
    fn start(&mut self, patients: u64) {
        if let Some(bar) = &self.0 {
            bar.set_length(patients);
        }
    }
    fn advance(&mut self) {
        if let Some(bar) = &self.0 {
            bar.inc(1);
        }
    }
}

async fn run_export<S: Storage>(
    storage: &S,
    args: ExportArgs,
    data: &std::path::Path,
) -> anyhow::Result<()> {
    let key_file = args
        .key_file
        .clone()
        .unwrap_or_else(|| data.join(export::KEY_FILE_NAME));
    let options = Options {
        since: args.since,
        until: args.until,
        identified: args.identified,
        ..Options::new(args.format.into(), Utc::now())
    };
    // Checked before the key is made, so a refused export leaves nothing behind at all.
    options.check()?;
    let key = export::load_or_create_key(&key_file)?;
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let actor = export::ExportActor::Admin { user };
    let mut bar = Bar((!args.json && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} patients {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    }));
    let started = std::time::Instant::now();
    let summary =
        export::export_to_folder(storage, options, key, &args.out, &actor, &mut bar).await?;
    if let Some(bar) = &bar.0 {
        bar.finish_and_clear();
    }
    let seconds = started.elapsed().as_secs_f64();
    let entries = summary.rows.get("entries").copied();
    if args.json {
        let mut line = serde_json::to_value(&summary)?;
        line["out"] = serde_json::json!(args.out.display().to_string());
        line["seconds"] = serde_json::json!((seconds * 1000.0).round() / 1000.0);
        line["peak_rss_kib"] = serde_json::json!(peak_rss_kib());
        println!("{line}");
    } else {
        println!(
            "exported {} consenting patients as {}{} to {} in {seconds:.1} s",
            summary.patients,
            summary.format,
            if summary.identified {
                " (identified)"
            } else {
                " (de-identified)"
            },
            args.out.display()
        );
        for (table, rows) in &summary.rows {
            println!("  {table}: {rows} rows");
        }
        if summary.suppressed_cells > 0 {
            println!(
                "  {} small aggregate cells suppressed",
                summary.suppressed_cells
            );
        }
        if let Some(n) = entries.filter(|_| summary.unreadable_entries > 0) {
            println!(
                "  {} of {n} entries unreadable and left out",
                summary.unreadable_entries
            );
        }
    }
    Ok(())
}

/// The peak resident memory of this process (Linux), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
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
