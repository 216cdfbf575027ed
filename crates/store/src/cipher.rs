//! Encryption at rest: opening a diary with its key, and rewriting a diary under another key
//! (encrypting a plain one, or changing the key).
//!
//! SQLCipher does the encryption, when the build links it (the store's `sqlcipher` feature); the
//! code asks the linked library rather than trusting the feature, since cargo may link SQLCipher
//! into a build that did not ask for it. A plain diary stays a standard SQLite file either way.
//!
//! Rewriting goes through a copy beside the file that replaces it in one rename, so a crash
//! half-way leaves the old file or the new one, never neither.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::error::{Result, StoreError};

/// Fewest bytes a key's secret must hold. The secret is not stretched (it is meant to be random,
/// from a key store or a key file, not a password), so it must be long enough on its own.
pub const MIN_SECRET_BYTES: usize = 16;

/// The first bytes of every plain SQLite file; an encrypted file starts with random salt.
const PLAIN_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// The key of an encrypted diary: 256 bits derived from a secret. Its `Debug` form hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct DiaryKey {
    hex: String,
}

impl DiaryKey {
    /// The key for `secret`: the bytes a phone's key store hands out, or a key file's contents
    /// (whitespace around them is ignored, so a base64 line with its newline works).
    ///
    /// # Failure
    /// [`StoreError::WeakKey`] when fewer than [`MIN_SECRET_BYTES`] bytes remain.
    pub fn from_secret(secret: &[u8]) -> Result<DiaryKey> {
        let secret = secret.trim_ascii();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(StoreError::WeakKey {
                bytes: secret.len(),
                needed: MIN_SECRET_BYTES,
            });
        }
        let mut hash = Sha256::new();
        hash.update(b"heeldiary diary key v1\0");
        hash.update(secret);
        let hex = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(DiaryKey { hex })
    }

    /// The key as SQLCipher reads it in a `PRAGMA key` or `ATTACH ... KEY` string: a raw key,
    /// so no password stretching runs on every open.
    fn sql_literal(&self) -> String {
        format!("'x''{}'''", self.hex)
    }
}

impl fmt::Debug for DiaryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DiaryKey(..)")
    }
}

/// Whether the SQLite this build links can encrypt (it is SQLCipher).
pub fn encryption_available() -> bool {
    Connection::open_in_memory()
        .ok()
        .is_some_and(|conn| cipher_version(&conn).is_some())
}

/// The engine this build links, for benchmark and diagnostic output, e.g. `SQLite 3.46.0` or
/// `SQLCipher 4.6.1 community (SQLite 3.46.1)`.
pub fn sqlite_engine() -> String {
    let sqlite = format!("SQLite {}", rusqlite::version());
    match Connection::open_in_memory()
        .ok()
        .and_then(|c| cipher_version(&c))
    {
        Some(cipher) => format!("SQLCipher {cipher} ({sqlite})"),
        None => sqlite,
    }
}

fn cipher_version(conn: &Connection) -> Option<String> {
    conn.query_row("PRAGMA cipher_version", [], |r| r.get(0))
        .optional()
        .ok()
        .flatten()
}

/// What the first bytes of a file say about it.
#[derive(Debug, PartialEq, Eq)]
enum Looks {
    /// Missing or empty: a new diary.
    New,
    /// A plain SQLite file.
    Plain,
    /// Anything else: an encrypted diary, or not a diary at all.
    Opaque,
}

fn looks(path: &Path) -> Looks {
    let mut head = Vec::with_capacity(PLAIN_HEADER.len());
    let read =
        File::open(path).and_then(|f| f.take(PLAIN_HEADER.len() as u64).read_to_end(&mut head));
    match read {
        Err(_) | Ok(0) => Looks::New,
        Ok(_) if head == PLAIN_HEADER => Looks::Plain,
        Ok(_) => Looks::Opaque,
    }
}

/// Opens the file at `path` with `key` (or none) and checks that the key reads it, before
/// anything is written: a refused key leaves the file as it was.
pub(crate) fn open_connection(path: &Path, key: Option<&DiaryKey>) -> Result<Connection> {
    match (looks(path), key) {
        (Looks::Opaque, None) => return Err(StoreError::KeyRequired),
        (Looks::Plain, Some(_)) => return Err(StoreError::NotEncrypted),
        _ => {}
    }
    let conn = Connection::open(path)?;
    if let Some(key) = key {
        apply_key(&conn, key)?;
    }
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(_) => Ok(conn),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == ErrorCode::NotADatabase && key.is_some() =>
        {
            Err(StoreError::WrongKey)
        }
        Err(other) => Err(other.into()),
    }
}

fn apply_key(conn: &Connection, key: &DiaryKey) -> Result<()> {
    if cipher_version(conn).is_none() {
        return Err(StoreError::EncryptionUnavailable);
    }
    conn.execute_batch(&format!("PRAGMA key = {};", key.sql_literal()))?;
    Ok(())
}

/// Rewrites the diary at `path`, readable with `from`, so that it reads with `to` (`None`:
/// plain). Every table is copied, so every entry keeps its history, its sync state and its
/// enrolment. No other handle may have the diary open meanwhile.
pub(crate) fn rewrite(path: &Path, from: Option<&DiaryKey>, to: Option<&DiaryKey>) -> Result<()> {
    let conn = open_connection(path, from)?;
    if cipher_version(&conn).is_none() {
        return Err(StoreError::EncryptionUnavailable);
    }
    // Out of WAL, so no write-ahead log of the old file is left to be read against the new one.
    conn.pragma_update(None, "journal_mode", "DELETE")?;
    let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let copy = sibling(path, ".rewrite");
    let replace_error = |error: std::io::Error| StoreError::Replace {
        path: path.to_owned(),
        error,
    };
    for leftover in [copy.clone(), sibling(&copy, "-journal")] {
        match std::fs::remove_file(&leftover) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(replace_error(e)),
            _ => {}
        }
    }
    let target_key = to.map_or_else(|| "''".to_string(), DiaryKey::sql_literal);
    conn.execute(
        &format!("ATTACH DATABASE ?1 AS rewritten KEY {target_key}"),
        [copy.to_string_lossy()],
    )?;
    let exported = conn
        .query_row("SELECT sqlcipher_export('rewritten')", [], |_| Ok(()))
        .and_then(|()| conn.execute_batch(&format!("PRAGMA rewritten.user_version = {version};")));
    conn.execute_batch("DETACH DATABASE rewritten")?;
    exported?;
    drop(conn);
    // The copy must read with the new key and hold the same schema before it replaces anything.
    let check = open_connection(&copy, to)?;
    let copied: u32 = check.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    drop(check);
    if copied != version || (to.is_some() && looks(&copy) != Looks::Opaque) {
        return Err(StoreError::corrupt("the rewritten copy does not match"));
    }
    File::open(&copy)
        .and_then(|f| f.sync_all())
        .map_err(replace_error)?;
    std::fs::rename(&copy, path).map_err(replace_error)?;
    // The rename itself must reach the disk, or a power cut could bring the old file back.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(replace_error)?;
    }
    Ok(())
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
