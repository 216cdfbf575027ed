//! Enrolment, sync and status: the device's side of the server.

use anyhow::{Context, Result};
use heeldiary_client::{ClientError, SyncOptions};
use heeldiary_store::{Store, StoreError};

/// One worker thread: requests in flight progress on it while the command's own thread reads
/// and writes the diary (a sync overlaps each round trip with that work).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the network runtime")
}

pub fn enrol(store: &mut Store, server: &str, code: &str, label: Option<&str>) -> Result<()> {
    let asked_as = store.device_id();
    let enrolment = runtime()?.block_on(heeldiary_client::enrol(store, server, code, label))?;
    if store.device_id() != asked_as {
        println!(
            "device id {asked_as} is registered already and could not be shown to be this \
             diary's (revoked, or enrolled elsewhere); this diary took the new device id {}",
            store.device_id()
        );
    }
    println!(
        "enrolled device {} for patient {} at {}",
        store.device_id(),
        enrolment.patient_id,
        enrolment.server_url
    );
    println!("next: heeldiary sync");
    Ok(())
}

pub fn sync(store: &mut Store, json: bool, batch: usize) -> Result<()> {
    let options = SyncOptions {
        push_batch: batch,
        ..SyncOptions::default()
    };
    let summary = runtime()?.block_on(heeldiary_client::sync(store, &options))?;
    if json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "pushed {} (already on server {}), pulled {}, conflicts {}, in {:.2} s{}{}",
            summary.pushed,
            summary.already_on_server,
            summary.pulled,
            summary.conflicts,
            summary.elapsed_ms as f64 / 1000.0,
            if summary.retries > 0 {
                format!(", {} retries", summary.retries)
            } else {
                String::new()
            },
            if summary.restamped > 0 {
                format!(
                    "; this device's clock ran ahead of the server's, {} changes were re-stamped",
                    summary.restamped
                )
            } else {
                String::new()
            },
        );
        if let Some(device_id) = summary.new_device_id {
            println!(
                "this diary is a copy of another (a copied file or a restored backup): it now \
                 syncs as device {device_id}; {} changes not yet on the server were sent again \
                 under it, nothing was lost",
                summary.reissued
            );
        }
        if summary.server_restored {
            println!(
                "the server was restored from a backup: this diary sent everything it holds \
                 again and read the server's feed again from the start"
            );
        }
    }
    Ok(())
}

pub fn research_consent(store: &mut Store, on: bool) -> Result<()> {
    store.set_research_consent(on)?;
    let enrolled = !matches!(store.enrolment(), Err(StoreError::NotEnrolled));
    println!(
        "research consent: {}{}",
        if on { "on" } else { "off" },
        if enrolled {
            " (reaches the server with the next sync)"
        } else {
            " (reaches the server once this diary is enrolled and syncs)"
        }
    );
    if !on {
        println!("your diary will be left out of every research export from then on");
    }
    Ok(())
}

pub fn status(store: &Store, json: bool) -> Result<()> {
    let state = store.sync_state()?;
    let consent = store.research_consent()?;
    let enrolment = match store.enrolment() {
        Ok(e) => Some(e),
        Err(StoreError::NotEnrolled) => None,
        Err(other) => return Err(other.into()),
    };
    if json {
        let doc = serde_json::json!({
            "device_id": store.device_id(),
            "server_url": enrolment.as_ref().map(|e| &e.server_url),
            "patient_id": enrolment.as_ref().map(|e| e.patient_id),
            "sync": state,
            "research_consent": consent.consent,
            "research_consent_pending": consent.pending,
        });
        println!("{doc}");
        return Ok(());
    }
    println!("device      {}", store.device_id());
    match &enrolment {
        Some(e) => println!("server      {} (patient {})", e.server_url, e.patient_id),
        None => println!("server      not enrolled (heeldiary enroll --server URL --code CODE)"),
    }
    println!(
        "pending     {} changes not yet on the server",
        state.pending
    );
    println!("pulled up to cursor {}", state.pull_cursor);
    if state.clock_offset_ms != 0 {
        println!(
            "clock       corrected by {} ms to match the server",
            state.clock_offset_ms
        );
    }
    match state.last_sync_at {
        Some(at) => println!("last sync   {}", at.format("%Y-%m-%d %H:%M:%S UTC")),
        None => println!("last sync   never"),
    }
    println!(
        "research    {}{}",
        if consent.consent { "on" } else { "off" },
        if consent.pending {
            " (not yet on the server)"
        } else {
            ""
        }
    );
    Ok(())
}

/// What to do about `err`, on the command line, to follow its message: the libraries a phone app
/// embeds leave such advice out, as the way to enrol or to start another diary depends on the app.
pub fn advice(err: &anyhow::Error) -> Option<&'static str> {
    err.chain().find_map(|cause| {
        let store = match cause.downcast_ref::<ClientError>() {
            Some(ClientError::AlreadyEnrolled { .. }) => {
                return Some(": start a new diary file (--db) to enrol elsewhere")
            }
            Some(ClientError::Store(store)) => Some(store),
            Some(_) => None,
            None => cause.downcast_ref::<StoreError>(),
        };
        match store? {
            StoreError::NotEnrolled => Some("; run `heeldiary enroll --server URL --code CODE`"),
            StoreError::KeyRequired => Some("; pass --key-file PATH or set HEELDIARY_KEY_FILE"),
            StoreError::NotEncrypted => Some(
                "; leave out --key-file and HEELDIARY_KEY_FILE, or run `heeldiary encrypt --key-file PATH`",
            ),
            _ => None,
        }
    })
}
