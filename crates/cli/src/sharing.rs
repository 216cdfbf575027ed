//! Sharing the diary with providers and reading who looked at it: online calls to the server the
//! diary is enrolled with; offline they fail and change nothing.

use anyhow::Result;
use heeldiary_store::Store;
use uuid::Uuid;

use crate::sync::runtime;

pub fn share(store: &Store, code: &str, json: bool) -> Result<()> {
    let share = runtime()?.block_on(heeldiary_client::share(store, code))?;
    if json {
        println!("{}", serde_json::to_string(&share)?);
    } else {
        println!(
            "your diary is shared with {} (provider {}) since {}",
            share.name,
            share.provider_id,
            share.since.format("%Y-%m-%d %H:%M UTC")
        );
        println!(
            "to stop:  heeldiary unshare --provider {}",
            share.provider_id
        );
    }
    Ok(())
}

pub fn shares(store: &Store, json: bool) -> Result<()> {
    let shares = runtime()?.block_on(heeldiary_client::shares(store))?;
    if json {
        println!("{}", serde_json::to_string(&shares)?);
        return Ok(());
    }
    if shares.is_empty() {
        println!("your diary is not shared with any provider");
    }
    for s in shares {
        println!(
            "{}  {}  since {}",
            s.provider_id,
            s.name,
            s.since.format("%Y-%m-%d %H:%M UTC")
        );
    }
    Ok(())
}

pub fn unshare(store: &Store, provider: Uuid) -> Result<()> {
    runtime()?.block_on(heeldiary_client::unshare(store, provider))?;
    println!("your diary is no longer shared with provider {provider}");
    Ok(())
}

pub fn access_log(store: &Store, json: bool) -> Result<()> {
    let reads = runtime()?.block_on(heeldiary_client::access_log(store))?;
    if json {
        println!("{}", serde_json::to_string(&reads)?);
        return Ok(());
    }
    if reads.is_empty() {
        println!("no provider has looked at your diary");
    }
    for r in reads {
        println!(
            "{}  {} ({})  {}{}",
            r.at.format("%Y-%m-%d %H:%M UTC"),
            r.provider_name,
            r.provider_id,
            r.what,
            if r.break_glass {
                "  [break-glass access granted by the clinic]"
            } else {
                ""
            }
        );
    }
    Ok(())
}
