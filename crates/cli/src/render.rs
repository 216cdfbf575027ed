//! Text views of entries for people.

use std::fmt::Write;

use heeldiary_core::Entry;
use heeldiary_store::HistoryChange;

fn score(value: Option<u8>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

fn words<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Nerve signs as letters: R radiating, N numbness/tingling/burning (with severity), W weakness.
fn nerve_signs(entry: &Entry) -> String {
    let mut signs = Vec::new();
    if entry.radiating == Some(true) {
        signs.push("R".to_string());
    }
    if let Some(level) = entry
        .numbness
        .filter(|s| *s != heeldiary_core::Severity::Absent)
    {
        signs.push(format!("N:{level}"));
    }
    if entry.weakness == Some(true) {
        signs.push("W".to_string());
    }
    if signs.is_empty() {
        "-".into()
    } else {
        signs.join(" ")
    }
}

/// A table with one line per entry.
pub fn entry_table(entries: &[Entry]) -> String {
    if entries.is_empty() {
        return "no entries\n".into();
    }
    let mut out = format!(
        "{:<10}  {:>5} {:>4} {:>4} {:>4}  {:<12} {:<24} {}\n",
        "day", "first", "rest", "sit", "act", "nerve", "treatments", "id"
    );
    for e in entries {
        let _ = writeln!(
            out,
            "{:<10}  {:>5} {:>4} {:>4} {:>4}  {:<12} {:<24} {}{}",
            e.day,
            score(e.first_step_pain),
            score(e.rest_pain),
            score(e.sitting_pain),
            score(e.activity_pain),
            nerve_signs(e),
            words(&e.treatments),
            e.id,
            if e.backfilled { "  (back-filled)" } else { "" },
        );
    }
    let _ = writeln!(out, "{} entries. Pain scores 0-10: first steps, after rest, sitting/bending, after activity. Nerve: R radiating, N numbness/tingling, W weakness.", entries.len());
    out
}

/// One entry and how it came to be.
pub fn entry_with_history(entry: &Entry, history: &[HistoryChange]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "entry {}{}",
        entry.id,
        if entry.deleted { " (deleted)" } else { "" }
    );
    let value = serde_json::to_value(entry).unwrap_or_default();
    if let Some(object) = value.as_object() {
        for (key, value) in object {
            if key != "id" && key != "deleted" {
                let _ = writeln!(out, "  {key:<18} {}", plain(value));
            }
        }
    }
    let _ = writeln!(out, "history ({} changes, oldest first):", history.len());
    for change in history {
        let fields = change
            .changes
            .iter()
            .map(|c| {
                format!(
                    "{}={}{}",
                    c.field,
                    plain(&c.value),
                    if c.current { "" } else { " (superseded)" }
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "  {}  device {} #{}: {}",
            change.at.format("%Y-%m-%d %H:%M:%S UTC"),
            &change.device_id.to_string()[..8],
            change.device_seq,
            fields
        );
    }
    out
}

fn plain(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}
