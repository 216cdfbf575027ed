//! The report as text, for one of two readers: the patient (plain words, warning signs first,
//! no statistics names or identifiers) or the clinician (the figures and the evidence).

use std::fmt::Write as _;
use std::str::FromStr;

use crate::report::{Direction, Report, Urgency};

/// Who reads the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Audience {
    /// The person keeping the diary: plain language, what to do first.
    #[default]
    Patient,
    /// A clinician: today's figures and the evidence behind each finding.
    Clinician,
}

impl FromStr for Audience {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "patient" => Ok(Audience::Patient),
            "clinician" => Ok(Audience::Clinician),
            other => Err(format!(
                "unknown audience `{other}`; expected patient or clinician"
            )),
        }
    }
}

const FOOTER: &str = "This report describes patterns in the diary and the evidence for them, not their cause: only a clinician can say where the pain comes from.";

/// The report as text for `audience`.
pub fn render(report: &Report, audience: Audience) -> String {
    match audience {
        Audience::Patient => render_patient(report),
        Audience::Clinician => render_text(report),
    }
}

fn signs_asked(report: &Report) -> String {
    report
        .adherence
        .signs_asked
        .iter()
        .map(|sign| format!("{} ({} days answered)", sign.question, sign.days_answered))
        .collect::<Vec<_>>()
        .join("; ")
}

fn render_patient(report: &Report) -> String {
    let mut text = String::new();
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(
        text,
        "Your heel-pain diary, {} to {}",
        report.window.from, report.window.to
    );
    for urgency in [Urgency::Urgent, Urgency::Soon, Urgency::Review] {
        for flag in report.red_flags.iter().filter(|f| f.urgency == urgency) {
            let label = match urgency {
                Urgency::Urgent => "URGENT",
                Urgency::Soon => "See a clinician soon",
                Urgency::Review => "For your next visit",
            };
            let _ = writeln!(text, "{label}: {}", flag.patient_sentence);
        }
    }
    if report.red_flags.is_empty() {
        let _ = writeln!(
            text,
            "Warning signs: none recorded. The diary asks about: {}.",
            signs_asked(report)
        );
    }
    let _ = writeln!(text, "\nPattern: {}", report.pattern.patient_summary);
    let _ = writeln!(text, "\nHow the pain is changing:");
    for trend in report.trends.all() {
        if trend.direction != Direction::InsufficientData || trend.n > 0 {
            let _ = writeln!(text, "  {}", trend.patient_sentence);
        }
    }
    if !report.treatments.is_empty() {
        let _ = writeln!(text, "\nTreatments:");
        for response in &report.treatments {
            let _ = writeln!(text, "  {}", response.patient_sentence);
        }
    }
    let backfilled = match report.adherence.days_backfilled {
        0 => String::new(),
        n => format!(" ({n} filled in later)"),
    };
    let _ = writeln!(
        text,
        "\nYou logged {} of {} days{backfilled}.",
        report.adherence.days_logged, report.adherence.days_in_window
    );
    let _ = writeln!(
        text,
        "\nThis describes patterns in your diary, not their cause: only a clinician can say where the pain comes from."
    );
    text
}

/// The clinician's multi-line report: red flags first (urgent at the top), then the pattern
/// with its evidence, the trends with their statistics, treatments and shifts.
pub fn render_text(report: &Report) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "Heel-pain diary report, {} to {} ({} days)",
        report.window.from, report.window.to, report.window.days
    );
    let _ = writeln!(text, "\nRed flags:");
    if report.red_flags.is_empty() {
        let _ = writeln!(
            text,
            "  None. Asked in the window: {}.",
            signs_asked(report)
        );
    }
    for flag in &report.red_flags {
        let _ = writeln!(
            text,
            "  ! {} [{}] started {}, last changed {}: {}",
            flag.urgency.as_str(),
            flag.kind.as_str(),
            flag.started,
            flag.last_changed,
            flag.sentence
        );
    }
    let _ = writeln!(
        text,
        "\nLogged {} of {} days ({:.0}%), {} back-filled.",
        report.adherence.days_logged,
        report.adherence.days_in_window,
        report.adherence.ratio * 100.0,
        report.adherence.days_backfilled
    );
    let sub = report
        .pattern
        .sub_reading
        .map(|sub| format!(" ({})", sub.as_str()))
        .unwrap_or_default();
    let _ = writeln!(text, "\nPattern: {}{sub}", report.pattern.kind.as_str());
    let _ = writeln!(text, "  {}", report.pattern.summary);
    for item in report
        .pattern
        .evidence
        .iter()
        .filter(|item| item.days_present > 0)
    {
        let _ = writeln!(text, "  - {}", item.sentence);
    }

    let _ = writeln!(text, "\nTrends:");
    for trend in report.trends.all() {
        let _ = writeln!(
            text,
            "  {:<15} {}",
            format!("{}:", trend.direction.as_str()),
            trend.sentence
        );
    }

    let _ = writeln!(text, "\nTreatments:");
    if report.treatments.is_empty() {
        let _ = writeln!(text, "  No treatment logged.");
    }
    for response in &report.treatments {
        let _ = writeln!(
            text,
            "  {} ({}): {}",
            response.treatment,
            response.helped.as_str(),
            response.sentence
        );
    }

    let _ = writeln!(text, "\nPattern shifts:");
    if report.shifts.is_empty() {
        let _ = writeln!(text, "  None detected.");
    }
    for shift in &report.shifts {
        let _ = writeln!(text, "  {}: {}", shift.date, shift.sentence);
    }
    let _ = writeln!(text, "\n{FOOTER}");
    text
}
