//! `heeldiary`: the patient's diary on the command line: the same store a phone app embeds,
//! plus enrolment and sync with a heeldiary server and the trend report.
//!
//! A binary: it may use every heeldiary library but the server. The libraries' errors never name
//! a command to run (a phone app embeds them); this binary adds that advice when it prints one.

mod diary;
mod entry_flags;
mod render;
mod sharing;
mod sync;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use heeldiary_store::{DiaryKey, Store};
use uuid::Uuid;

use entry_flags::EntryFlags;

/// A heel-pain diary: log how your heel feels each day, see which pattern your days follow, and
/// share it with your clinician.
#[derive(Debug, Parser)]
#[command(name = "heeldiary", version, about, long_about = None, after_help = "Examples:\n  heeldiary log --first-step-pain 7 --heel-tender --note \"first steps hurt\"\n  heeldiary list --from 2026-11-01\n  heeldiary trends --for clinician\n  heeldiary enroll --server https://clinic.example --code ABCD-EFGH-JKLM && heeldiary sync")]
struct Cli {
    /// Diary file (SQLite). Default: the platform data folder, e.g. ~/.local/share/heeldiary/diary.sqlite3.
    #[arg(long, global = true, env = "HEELDIARY_DB", value_name = "PATH")]
    db: Option<PathBuf>,
    /// File holding the diary's key (at least 16 bytes of random secret, e.g. 32 random bytes in
    /// base64). With it the diary file is encrypted; without it, plain.
    #[arg(long, global = true, env = "HEELDIARY_KEY_FILE", value_name = "PATH")]
    key_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Record a check-in; prints the new entry's id. An urgent sign (saddle numbness, a bladder
    /// or bowel change, weakness in both legs or growing weakness) is answered at once on
    /// stderr with advice to seek urgent care today.
    Log {
        /// The day it describes (YYYY-MM-DD). Default: today.
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<NaiveDate>,
        /// Print the entry and any urgent alert as JSON (`{"id", "entry", "urgent_alert"}`).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        fields: EntryFlags,
    },
    /// List entries, oldest first.
    List {
        /// First day to include (YYYY-MM-DD).
        #[arg(long, value_name = "YYYY-MM-DD")]
        from: Option<NaiveDate>,
        /// Last day to include (YYYY-MM-DD).
        #[arg(long, value_name = "YYYY-MM-DD")]
        to: Option<NaiveDate>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one entry with its full history of changes.
    Show {
        /// Entry id.
        id: Uuid,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Change fields of an entry; earlier values stay in its history.
    Edit {
        /// Entry id.
        id: Uuid,
        /// Move the entry to another day (YYYY-MM-DD).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<NaiveDate>,
        /// Clear fields, e.g. `--clear note,steps`.
        #[arg(long, value_name = "FIELDS", value_delimiter = ',')]
        clear: Vec<String>,
        #[command(flatten)]
        fields: EntryFlags,
    },
    /// Delete an entry (its history is kept).
    Delete {
        /// Entry id.
        id: Uuid,
    },
    /// Import entries from NDJSON (the shape `list --json` prints; ids optional). All or nothing.
    Import {
        /// File to read, or `-` for standard input.
        file: PathBuf,
    },
    /// Connect this device to a heeldiary server with the code your clinic gave you.
    #[command(name = "enroll", alias = "enrol")]
    Enrol {
        /// Server URL, e.g. https://clinic.example or http://127.0.0.1:8080.
        #[arg(long, value_name = "URL")]
        server: String,
        /// Single-use enrolment code.
        #[arg(long, value_name = "CODE")]
        code: String,
        /// A name for this device, e.g. "phone".
        #[arg(long, value_name = "TEXT")]
        label: Option<String>,
    },
    /// Send this device's changes to the server and fetch the other devices' changes.
    Sync {
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        /// Operations per push request.
        #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=1000))]
        batch: u32,
    },
    /// Which pattern your days follow, how each pain measure is trending, whether treatments
    /// helped, and signs to discuss with a clinician. Patterns, never diagnoses.
    Trends {
        /// Days the pattern and trends cover, ending on --as-of.
        #[arg(long, value_name = "DAYS", default_value_t = heeldiary_trends::Options::DEFAULT_WINDOW_DAYS, value_parser = clap::value_parser!(u32).range(7..=3660))]
        window: u32,
        /// The last day of the analysis (YYYY-MM-DD). Default: today.
        #[arg(long, value_name = "YYYY-MM-DD")]
        as_of: Option<NaiveDate>,
        /// The report as JSON (described by schema/trends-report.schema.json); it carries the
        /// sentences for both readers.
        #[arg(long)]
        json: bool,
        /// Who reads the text: `patient` (plain words, warning signs first) or `clinician`
        /// (figures and evidence).
        #[arg(long = "for", value_name = "READER", default_value = "patient", value_parser = ["patient", "clinician"])]
        audience: String,
    },
    /// Share your diary with a provider, by the share code the provider gave you.
    Share {
        /// The provider's share code (XXXX-XXXX-XXXX).
        #[arg(long, value_name = "SHARE_CODE")]
        provider: String,
        /// Print the share as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the providers your diary is shared with (id, name, since when).
    Shares {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Stop sharing your diary with a provider; it takes effect on the provider's next request.
    Unshare {
        /// The provider id (see `heeldiary shares`).
        #[arg(long, value_name = "PROVIDER_ID")]
        provider: Uuid,
    },
    /// Show which providers looked at your diary, and when.
    AccessLog {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Whether your de-identified diary may be used for research (off until you say on). The
    /// answer reaches the clinic's server with the next sync; off removes you from every later
    /// research export.
    ResearchConsent {
        /// on or off.
        #[arg(value_enum)]
        answer: OnOff,
    },
    /// Encrypt a plain diary in place with the key of --key-file; every entry and its history
    /// are kept, and a crash half-way leaves the plain file or the encrypted one.
    Encrypt,
    /// Change the key of an encrypted diary (the current key comes from --key-file).
    Rekey {
        /// File holding the new key.
        #[arg(long, value_name = "PATH")]
        new_key_file: PathBuf,
    },
    /// Show this device's id, enrolment and sync state.
    Status {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// A yes or no on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OnOff {
    On,
    Off,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let advice = sync::advice(&err).unwrap_or_default();
            eprintln!("error: {err:#}{advice}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let path = match cli.db {
        Some(path) => path,
        None => default_db_path()?,
    };
    let key = cli.key_file.as_deref().map(read_key).transpose()?;
    match &cli.command {
        Command::Encrypt => {
            let key =
                key.context("encrypt needs a key: pass --key-file PATH or set HEELDIARY_KEY_FILE")?;
            Store::encrypt_file(&path, &key)
                .with_context(|| format!("cannot encrypt the diary {}", path.display()))?;
            eprintln!(
                "encrypted {}; it now opens only with its key",
                path.display()
            );
            return Ok(());
        }
        Command::Rekey { new_key_file } => {
            let old = key.context(
                "rekey needs the current key: pass --key-file PATH or set HEELDIARY_KEY_FILE",
            )?;
            let new = read_key(new_key_file)?;
            Store::rekey_file(&path, &old, &new).with_context(|| {
                format!("cannot change the key of the diary {}", path.display())
            })?;
            eprintln!(
                "changed the key of {}; the old key no longer opens it",
                path.display()
            );
            return Ok(());
        }
        _ => {}
    }
    let mut store = Store::open_with_key(&path, key.as_ref())
        .with_context(|| format!("cannot open the diary {}", path.display()))?;
    match cli.command {
        Command::Encrypt | Command::Rekey { .. } => unreachable!("handled before opening"),
        Command::Log { date, json, fields } => diary::log(&mut store, date, json, fields),
        Command::List { from, to, json } => diary::list(&store, from, to, json),
        Command::Show { id, json } => diary::show(&store, id, json),
        Command::Edit {
            id,
            date,
            clear,
            fields,
        } => diary::edit(&mut store, id, date, &clear, fields),
        Command::Delete { id } => diary::delete(&mut store, id),
        Command::Import { file } => diary::import(&mut store, &file),
        Command::Enrol {
            server,
            code,
            label,
        } => sync::enrol(&mut store, &server, &code, label.as_deref()),
        Command::Sync { json, batch } => sync::sync(&mut store, json, batch as usize),
        Command::Status { json } => sync::status(&store, json),
        Command::Share { provider, json } => sharing::share(&store, &provider, json),
        Command::Shares { json } => sharing::shares(&store, json),
        Command::Unshare { provider } => sharing::unshare(&store, provider),
        Command::AccessLog { json } => sharing::access_log(&store, json),
        Command::ResearchConsent { answer } => {
            sync::research_consent(&mut store, answer == OnOff::On)
        }
        Command::Trends {
            window,
            as_of,
            json,
            audience,
        } => {
            let audience = audience.parse().map_err(anyhow::Error::msg)?;
            diary::trends(&store, window, as_of, json, audience)
        }
    }
}

fn read_key(path: &Path) -> Result<DiaryKey> {
    let secret = std::fs::read(path)
        .with_context(|| format!("cannot read the key file {}", path.display()))?;
    DiaryKey::from_secret(&secret).with_context(|| format!("key file {}", path.display()))
}

fn default_db_path() -> Result<PathBuf> {
    let base = dirs::data_dir()
        .context("no data folder on this system; pass --db PATH or set HEELDIARY_DB")?;
    Ok(base.join("heeldiary").join("diary.sqlite3"))
}
