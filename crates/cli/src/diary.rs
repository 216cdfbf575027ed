//! The diary commands: log, list, show, edit, delete, import.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use chrono::NaiveDate;
use heeldiary_core::{EntryInput, Field};
use heeldiary_store::{Store, StoreError};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use uuid::Uuid;

use crate::entry_flags::EntryFlags;
use crate::render;

pub fn log(
    store: &mut Store,
    date: Option<NaiveDate>,
    json: bool,
    fields: EntryFlags,
) -> Result<()> {
    let mut input = fields.into_input();
    let day = date.unwrap_or_else(|| store.now().date_naive());
    input.set(Field::Day, Value::String(day.to_string()));
    let entry = store.log(input)?;
    // The entry is saved whatever the alert finds; reading the diary for the alert must not
    // turn a saved entry into a failed command, so the entry's own signs are the fallback.
    let alert = match store.list(None, Some(entry.day)) {
        Ok(history) => heeldiary_trends::urgent_alert(&history, &entry),
        Err(_) => heeldiary_trends::urgent_alert(&[], &entry),
    };
    if let Some(alert) = &alert {
        eprintln!("{}", alert.message);
    }
    if json {
        #[derive(serde::Serialize)]
        struct Logged<'a> {
            id: uuid::Uuid,
            entry: &'a heeldiary_core::Entry,
            urgent_alert: Option<&'a heeldiary_trends::UrgentAlert>,
        }
        println!(
            "{}",
            serde_json::to_string(&Logged {
                id: entry.id,
                entry: &entry,
                urgent_alert: alert.as_ref(),
            })?
        );
    } else {
        println!("{}", entry.id);
    }
    Ok(())
}

pub fn list(
    store: &Store,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    json: bool,
) -> Result<()> {
    let entries = store.list(from, to)?;
    let mut out = std::io::stdout().lock();
    if json {
        for entry in &entries {
            serde_json::to_writer(&mut out, entry)?;
            out.write_all(b"\n")?;
        }
    } else {
        out.write_all(render::entry_table(&entries).as_bytes())?;
    }
    Ok(())
}

pub fn show(store: &Store, id: Uuid, json: bool) -> Result<()> {
    let entry = store.get_any(id)?;
    let history = store.history(id)?;
    if json {
        #[derive(serde::Serialize)]
        struct Shown<'a> {
            entry: &'a heeldiary_core::Entry,
            history: &'a [heeldiary_store::HistoryChange],
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&Shown {
                entry: &entry,
                history: &history
            })?
        );
    } else {
        print!("{}", render::entry_with_history(&entry, &history));
    }
    Ok(())
}

pub fn edit(
    store: &mut Store,
    id: Uuid,
    date: Option<NaiveDate>,
    clear: &[String],
    fields: EntryFlags,
) -> Result<()> {
    let mut input = fields.into_input();
    if let Some(day) = date {
        input.set(Field::Day, Value::String(day.to_string()));
    }
    for name in clear {
        let field: Field = name.replace('-', "_").parse().map_err(|_| {
            anyhow::anyhow!(
                "--clear: unknown field `{name}`; expected some of: {}",
                Field::input_choices()
            )
        })?;
        if input.fields.contains_key(&field) {
            bail!("--clear {name}: the same command also sets it");
        }
        input.set(field, Value::Null);
    }
    let entry = store.edit(id, input)?;
    println!("{}", entry.id);
    Ok(())
}

pub fn delete(store: &mut Store, id: Uuid) -> Result<()> {
    store.delete(id)?;
    eprintln!("deleted {id}");
    Ok(())
}

/// Reads every line first so that a bad line is reported before anything is written, then writes
/// them all in one transaction.
pub fn import(store: &mut Store, file: &Path) -> Result<()> {
    let reader: Box<dyn BufRead> = if file == Path::new("-") {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let f =
            std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
        Box::new(BufReader::new(f))
    };
    let mut inputs = Vec::new();
    let mut line_numbers = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let number = index + 1;
        let line = line.with_context(|| format!("line {number}: cannot read"))?;
        if line.trim().is_empty() {
            continue;
        }
        let input: EntryInput = serde_json::from_str(&line).map_err(|e| {
            // serde_json places its message at "line 1" of the one line it was given: name the
            // file's line instead, and the column only where the JSON itself is broken.
            let text = e.to_string();
            let message = text
                .rsplit_once(" at line ")
                .map_or(text.as_str(), |(m, _)| m);
            match e.classify() {
                serde_json::error::Category::Data => {
                    anyhow::anyhow!("line {number}: {message}; nothing was imported")
                }
                _ => anyhow::anyhow!(
                    "line {number}, column {}: {message}; nothing was imported",
                    e.column()
                ),
            }
        })?;
        inputs.push(input);
        line_numbers.push(number);
    }
    let bar = ProgressBar::new(inputs.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} entries ({per_sec}, {eta} left)")
            .expect("valid progress template"),
    );
    let outcome = store.import(inputs, |done| bar.set_position(done as u64));
    bar.finish_and_clear();
    match outcome {
        Ok(summary) => {
            println!("imported {} entries", summary.entries);
            Ok(())
        }
        Err(StoreError::Import { index, source }) => {
            bail!(
                "line {}: {source}; nothing was imported",
                line_numbers[index]
            )
        }
        Err(other) => Err(other.into()),
    }
}

pub fn trends(
    store: &Store,
    window: u32,
    as_of: Option<NaiveDate>,
    json: bool,
    audience: heeldiary_trends::Audience,
) -> Result<()> {
    let as_of = as_of.unwrap_or_else(|| store.now().date_naive());
    let entries = store.list(None, Some(as_of))?;
    let options = heeldiary_trends::Options::new(as_of).with_window_days(window);
    let report = heeldiary_trends::analyse(&entries, &options);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", heeldiary_trends::render(&report, audience));
    }
    Ok(())
}
