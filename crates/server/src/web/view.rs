//! The dashboard's HTML, as maud templates: checked when the server compiles, and every value
//! written into them is escaped (a note holding `<script>` shows as text). Pages work without
//! JavaScript, label every control, give each chart a text alternative and keep text contrast
//! at WCAG AA or better.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use chrono::NaiveDate;
use heeldiary_core::wire::PulledOp;
use heeldiary_core::{Entry, Field};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use uuid::Uuid;

use super::chart;
use super::summary::{PatientData, Range};
use super::PatientSummary;
use crate::storage::Access;

const STYLE: &str = r#"
body{font-family:system-ui,sans-serif;color:#1a1a1a;background:#fff;margin:0 auto;max-width:72rem;padding:1rem;line-height:1.4}
a{color:#0b4f9c}a:focus,button:focus,input:focus{outline:3px solid #f5a000;outline-offset:2px}
header{display:flex;justify-content:space-between;align-items:center;border-bottom:1px solid #767676;margin-bottom:1rem}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #767676;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#eef2f7}.flag{background:#9b111e;color:#fff;padding:.1rem .4rem;border-radius:.3rem;font-weight:bold}
.flags{border:2px solid #9b111e;padding:.5rem 1rem;margin:1rem 0}.glass{background:#5c3c00;color:#fff;padding:.1rem .4rem}
.error{color:#9b111e;font-weight:bold}label{display:block;margin:.5rem 0 .2rem}input{font-size:1rem;padding:.3rem}
button{font-size:1rem;padding:.3rem .8rem}figure{margin:0}svg{max-width:100%;height:auto}
.legend span{margin-right:1rem}.backfilled{font-style:italic}.muted{color:#4a4a4a}
nav.ranges a{margin-right:.8rem}nav.ranges a[aria-current]{font-weight:bold;color:#1a1a1a}
@media print{header form,nav.ranges,.noprint{display:none}body{max-width:none;font-size:11pt}}
"#;

fn layout(title: &str, signed_in: Option<(&str, &str)>, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · heeldiary" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    p { a href="/provider/patients" { "heeldiary provider review" } }
                    @if let Some((name, csrf)) = signed_in {
                        form method="post" action="/provider/logout" {
                            input type="hidden" name="csrf" value=(csrf);
                            @if !name.is_empty() { span.muted { "Signed in as " (name) " " } }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
    .into_string()
}

/// A page that says what went wrong.
pub fn error_page(status: StatusCode, message: &str) -> String {
    layout(
        status.canonical_reason().unwrap_or("error"),
        None,
        html! {
            h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
            p { (message) }
            p { a href="/provider/patients" { "Back to the patient list" } }
        },
    )
}

/// Where a new provider chooses a password.
pub fn setup_page(token: &str, csrf: &str, error: Option<&str>) -> String {
    layout(
        "Choose a password",
        None,
        html! {
            h1 { "Choose your password" }
            @if let Some(error) = error { p.error role="alert" { (error) } }
            form method="post" action={ "/provider/setup/" (token) } {
                input type="hidden" name="csrf" value=(csrf);
                label for="password" { "New password (at least 12 characters)" }
                input #password type="password" name="password" autocomplete="new-password" required minlength="12";
                label for="password_confirm" { "The same password again" }
                input #password_confirm type="password" name="password_confirm" autocomplete="new-password" required minlength="12";
                p { button type="submit" { "Set password" } }
            }
        },
    )
}

/// The sign-in form.
pub fn login_page(csrf: &str, error: Option<&str>) -> String {
    layout(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            @if let Some(error) = error { p.error role="alert" { (error) } }
            form method="post" action="/provider/login" {
                input type="hidden" name="csrf" value=(csrf);
                label for="email" { "Email" }
                input #email type="email" name="email" autocomplete="username" required;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                p { button type="submit" { "Sign in" } }
            }
        },
    )
}

fn patient_name(label: Option<&str>, patient_id: Uuid) -> String {
    label.map_or_else(|| format!("Patient {patient_id}"), str::to_string)
}

fn access_badge(access: Access) -> Markup {
    html! {
        @if access == Access::BreakGlass {
            " " span.glass { "break-glass access (recorded)" }
        }
    }
}

/// The patients who share with the provider.
pub fn patients_page(name: &str, csrf: &str, rows: &[PatientSummary]) -> String {
    layout(
        "Patients",
        Some((name, csrf)),
        html! {
            h1 { "Patients" }
            @if rows.is_empty() {
                p { "No patient shares a diary with you yet. A patient shares with your share code." }
            } @else {
                table {
                    caption.muted { "Red flags first, then by most recent entry" }
                    thead { tr {
                        th scope="col" { "Patient" }
                        th scope="col" { "Red flags" }
                        th scope="col" { "Last entry" }
                        th scope="col" { "Days logged (last 28)" }
                        th scope="col" { "Current pattern" }
                    } }
                    tbody {
                        @for row in rows {
                            tr {
                                td {
                                    a href={ "/provider/patients/" (row.patient_id) } {
                                        (patient_name(row.label.as_deref(), row.patient_id))
                                    }
                                    (access_badge(row.access))
                                }
                                td {
                                    @if row.red_flags.is_empty() { "none" }
                                    @else {
                                        span.flag role="status" { "red flag" }
                                        @for kind in &row.red_flags { " " (kind.as_str().replace('_', " ")) }
                                    }
                                }
                                td { @if let Some(day) = row.last_entry_day { (day) } @else { "none" } }
                                td { (row.days_logged_28) " / 28" }
                                td { "consistent with " (row.pattern_summary) }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// What the patient page shows.
#[derive(Debug)]
pub struct PatientPage<'a> {
    /// For the sign-out form.
    pub csrf: &'a str,
    /// The patient.
    pub patient_id: Uuid,
    /// The clinic's label.
    pub label: Option<&'a str>,
    /// Why the provider may read it.
    pub access: Access,
    /// The chart's range.
    pub range: Range,
    /// The analysis date.
    pub today: NaiveDate,
    /// The diary.
    pub data: &'a PatientData,
}

fn red_flags(data: &PatientData) -> Markup {
    html! {
        @if !data.report.red_flags.is_empty() {
            section.flags aria-labelledby="flags" {
                h2 #flags { span.flag { "red flag" } " Signs to review" }
                ul {
                    @for flag in &data.report.red_flags {
                        li {
                            (flag.sentence)
                            " (days: "
                            (flag.dates.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
                            ")"
                        }
                    }
                }
            }
        }
    }
}

fn trend_report(data: &PatientData) -> Markup {
    let report = &data.report;
    html! {
        section aria-labelledby="trends" {
            h2 #trends { "Trend report (" (report.window.from) " to " (report.window.to) ")" }
            p { (report.pattern.summary) }
            @if !report.pattern.evidence.is_empty() {
                h3 { "Evidence" }
                ul { @for e in &report.pattern.evidence { li { (e.sentence) } } }
            }
            h3 { "Trends" }
            ul { @for t in report.trends.all() { li { (t.sentence) } } }
            @if !report.treatments.is_empty() {
                h3 { "Treatments" }
                ul { @for t in &report.treatments { li { (t.sentence) } } }
            }
            @if !report.shifts.is_empty() {
                h3 { "Changes of pattern" }
                ul { @for s in &report.shifts { li { (s.sentence) } } }
            }
            p {
                "Days logged: " (report.adherence.days_logged) " of " (report.adherence.days_in_window)
            }
        }
    }
}

fn pain(value: Option<u8>) -> String {
    value.map_or_else(|| "–".into(), |v| v.to_string())
}

fn nerve_signs(e: &Entry) -> String {
    let mut signs = Vec::new();
    if e.radiating == Some(true) {
        signs.push("radiating".to_string());
    }
    if let Some(n) = e
        .numbness
        .filter(|n| *n != heeldiary_core::Severity::Absent)
    {
        signs.push(format!("numbness {n}"));
    }
    if e.weakness == Some(true) {
        signs.push("weakness".to_string());
    }
    signs.join(", ")
}

/// Values written to a field by another device that lost to the value shown.
fn conflicts(ops: &[PulledOp]) -> Vec<(Field, String)> {
    let mut winners: BTreeMap<Field, &PulledOp> = BTreeMap::new();
    for op in ops {
        for field in op.op.patch.keys() {
            let slot = winners.entry(*field).or_insert(op);
            if op.op.hlc > slot.op.hlc {
                *slot = op;
            }
        }
    }
    let mut found = Vec::new();
    for op in ops {
        for (field, value) in &op.op.patch {
            let winner = winners[field];
            if winner.op.device_id != op.op.device_id && winner.op.patch.get(field) != Some(value) {
                found.push((*field, value.to_string()));
            }
        }
    }
    found
}

fn entries_table(data: &PatientData) -> Markup {
    html! {
        section aria-labelledby="entries" {
            h2 #entries { "Entries" }
            table {
                thead { tr {
                    th scope="col" { "Day" }
                    th scope="col" { "First-step pain" }
                    th scope="col" { "Sitting/bending pain" }
                    th scope="col" { "Nerve signs" }
                    th scope="col" { "Treatments" }
                    th scope="col" { "Note" }
                    th scope="col" { "History" }
                } }
                tbody {
                    @for e in data.entries.iter().rev() {
                        @let history = data.history.get(&e.id).map(Vec::as_slice).unwrap_or(&[]);
                        @let clashes = conflicts(history);
                        tr class=[e.backfilled.then_some("backfilled")] {
                            td {
                                (e.day)
                                @if e.backfilled { br; span.muted { "back-filled " (e.recorded_at.format("%Y-%m-%d")) } }
                            }
                            td { (pain(e.first_step_pain)) }
                            td { (pain(e.sitting_pain)) }
                            td { (nerve_signs(e)) }
                            td { (e.treatments.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) }
                            td { @if let Some(note) = &e.note { (note) } }
                            td {
                                @if !clashes.is_empty() {
                                    p {
                                        strong { "Conflicting values: " }
                                        @for (field, value) in &clashes { (field) " was " (value) "; " }
                                    }
                                }
                                @if history.len() > 1 {
                                    details {
                                        summary { (history.len()) " changes" }
                                        ol {
                                            @for op in history {
                                                li {
                                                    (op.received_at.format("%Y-%m-%d %H:%M UTC")) ": "
                                                    @for (field, value) in &op.op.patch { (field) " = " (value) "; " }
                                                }
                                            }
                                        }
                                    }
                                } @else {
                                    span.muted { "unchanged" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The chart and its controls for `range`.
fn chart_section(patient_id: Uuid, range: Range, today: NaiveDate, data: &PatientData) -> Markup {
    let first = data.entries.first().map_or(today, |e| e.day);
    let from = match range.days() {
        Some(days) => today - chrono::Days::new(days - 1),
        None => first.min(today),
    };
    let svg = chart::pain_chart(&data.entries, from, today, range.smoothed());
    let alt = chart::describe(&data.entries, from, today);
    html! {
        section aria-labelledby="chart" {
            h2 #chart { "Pain over time" }
            nav.ranges aria-label="Chart range" {
                @for r in Range::ALL {
                    @if r == range {
                        a href={ "/provider/patients/" (patient_id) "?range=" (r.key()) } aria-current="page" { (r.label()) }
                    } @else {
                        a href={ "/provider/patients/" (patient_id) "?range=" (r.key()) } { (r.label()) }
                    }
                }
            }
            figure role="group" aria-labelledby="chart-alt" {
                @match svg {
                    // The SVG comes from plotters and holds no text from the diary.
                    Ok(svg) => div role="img" aria-labelledby="chart-alt" { (PreEscaped(svg)) },
                    Err(e) => p.error { "The chart could not be drawn: " (e) },
                }
                figcaption #chart-alt { (alt) }
            }
            p.legend {
                span style={ "color:" (hex(chart::FIRST_STEP)) } { "● first-step pain" }
                span style={ "color:" (hex(chart::SITTING)) } { "● sitting/bending pain" }
                span { "○ back-filled entry" }
                span style={ "color:" (hex(chart::NERVE)) } { "▲ nerve-sign day" }
                span { "green band: treatment" }
                @if range.smoothed() { span { "lines: 7-day moving average" } }
                span.muted { "scale 0–10, " (from) " to " (today) }
            }
        }
    }
}

fn hex(c: plotters::style::RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// The patient page.
pub fn patient_page(page: &PatientPage<'_>) -> String {
    let name = patient_name(page.label, page.patient_id);
    layout(
        &name,
        Some(("", page.csrf)),
        html! {
            h1 { (name) (access_badge(page.access)) }
            p.noprint {
                a href={ "/provider/patients/" (page.patient_id) "/report" } { "Printable visit summary" }
            }
            (red_flags(page.data))
            (chart_section(page.patient_id, page.range, page.today, page.data))
            (trend_report(page.data))
            (entries_table(page.data))
        },
    )
}

/// The one-page printable visit summary.
pub fn report_page(
    patient_id: Uuid,
    label: Option<&str>,
    access: Access,
    today: NaiveDate,
    data: &PatientData,
) -> String {
    let name = patient_name(label, patient_id);
    let recent: Vec<&Entry> = data.entries.iter().rev().take(14).collect();
    layout(
        &format!("Visit summary: {name}"),
        None,
        html! {
            h1 { "Visit summary: " (name) (access_badge(access)) }
            p.muted { "As of " (today) ". Patterns, never diagnoses." }
            (red_flags(data))
            (chart_section(patient_id, Range::Months3, today, data))
            (trend_report(data))
            section aria-labelledby="recent" {
                h2 #recent { "Last entries" }
                table {
                    thead { tr {
                        th scope="col" { "Day" }
                        th scope="col" { "First-step" }
                        th scope="col" { "Sitting/bending" }
                        th scope="col" { "Nerve signs" }
                        th scope="col" { "Note" }
                    } }
                    tbody {
                        @for e in recent {
                            tr {
                                td { (e.day) @if e.backfilled { " (back-filled)" } }
                                td { (pain(e.first_step_pain)) }
                                td { (pain(e.sitting_pain)) }
                                td { (nerve_signs(e)) }
                                td { @if let Some(note) = &e.note { (note) } }
                            }
                        }
                    }
                }
            }
        },
    )
}
