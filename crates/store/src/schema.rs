//! Opening a diary file: pragmas, then migrations from `schema/client/` applied in order inside
//! one immediate transaction and recorded in `PRAGMA user_version`.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Result, StoreError};

/// The migrations, in order; version N is `MIGRATIONS[N - 1]`.
pub(crate) const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_diary",
        include_str!("../../../schema/client/0001_diary.sql"),
    ),
    (
        "0002_enrolment",
        include_str!("../../../schema/client/0002_enrolment.sql"),
    ),
    (
        "0003_device_clock",
        include_str!("../../../schema/client/0003_device_clock.sql"),
    ),
    (
        "0004_identity_and_epoch",
        include_str!("../../../schema/client/0004_identity_and_epoch.sql"),
    ),
    (
        "0005_compact_file",
        include_str!("../../../schema/client/0005_compact_file.sql"),
    ),
    (
        "0006_research_consent",
        include_str!("../../../schema/client/0006_research_consent.sql"),
    ),
    (
        "0007_given_up_sequence_numbers",
        include_str!("../../../schema/client/0007_given_up_sequence_numbers.sql"),
    ),
];

/// Where a migration that needs more than SQL hands over to the store: the SQL before this line
/// runs, then the migration's Rust step, then the SQL after the marker's line.
const CARRY_FORWARD: &str = "-- carry forward:";

/// The Rust step of the migration `name`, if it has one.
fn carry_forward(name: &str) -> Option<fn(&Connection) -> Result<()>> {
    match name {
        "0005_compact_file" => Some(crate::db::carry_text_log_forward),
        "0007_given_up_sequence_numbers" => Some(crate::db::note_given_up_seqs),
        _ => None,
    }
}

/// Schema version a fresh diary gets.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// `PRAGMA auto_vacuum` of a file that hands freed pages back on request.
const INCREMENTAL_VACUUM: i64 = 2;

pub(crate) fn prepare(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // Takes effect only in a new file (before its first table): pages the push queue frees are
    // handed back to the file system once it empties, so a synced diary keeps no dead space.
    // Set only where it is not yet: on a file that has it, the pragma still rewrites the
    // file's header, a commit (and waits for the disk) at every open, even of a command that
    // only reads.
    let auto_vacuum: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if auto_vacuum != INCREMENTAL_VACUUM {
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    }
    // WAL lets a reader (a sync in the background) run beside a writer; FULL makes every
    // acknowledged write survive power loss, which a diary promises its patient.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "cache_size", -32768)?;
    // Every sync runs the same few dozen statements (its steps, the merge of pulled pages):
    // prepared once per open rather than once per step.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Brings the schema up to `target` (at most [`SCHEMA_VERSION`]). A file from a newer build is
/// refused and left untouched.
pub(crate) fn migrate(conn: &mut Connection, target: u32) -> Result<u32> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for version in found + 1..=target {
        let (name, sql) = MIGRATIONS[version as usize - 1];
        match (sql.split_once(CARRY_FORWARD), carry_forward(name)) {
            (Some((before, marker_line)), Some(step)) => {
                tx.execute_batch(before)?;
                step(&tx)?;
                let after = marker_line.split_once('\n').map_or("", |(_, rest)| rest);
                tx.execute_batch(after)?;
            }
            _ => tx.execute_batch(sql)?,
        }
        tx.pragma_update(None, "user_version", version)?;
    }
    tx.commit()?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_of(conn: &Connection) -> Vec<(String, String)> {
        let mut stmt = conn
            .prepare("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
            .unwrap();
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.map(|r| r.unwrap()).collect()
    }

    #[test]
    fn every_earlier_version_upgrades_to_the_fresh_schema() -> Result<()> {
        let mut fresh = Connection::open_in_memory()?;
        migrate(&mut fresh, SCHEMA_VERSION)?;
        for start in 0..SCHEMA_VERSION {
            let mut old = Connection::open_in_memory()?;
            migrate(&mut old, start)?;
            assert_eq!(migrate(&mut old, SCHEMA_VERSION)?, start);
            assert_eq!(
                schema_of(&old),
                schema_of(&fresh),
                "upgrade from version {start}"
            );
        }
        Ok(())
    }

    #[test]
    fn a_newer_file_is_refused() -> Result<()> {
        let mut conn = Connection::open_in_memory()?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)?;
        let err = migrate(&mut conn, SCHEMA_VERSION).unwrap_err();
        assert!(
            matches!(err, StoreError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1)
        );
        Ok(())
    }
}
