//! The engine recovers the known truth of synthetic diaries, and two small hand-made diaries.

use chrono::{Days, NaiveDate};
use heeldiary_core::Entry;
use heeldiary_trends::cohort::{self, Scenario, Variant};
use heeldiary_trends::{analyse, render_text, Direction, Options, PatternKind, RedFlagKind};

fn start() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).unwrap()
}

/// Share of `seeds` diaries of a scenario whose report recovers everything.
fn recovered_share(scenario: Scenario, variant: Variant, seeds: std::ops::Range<u64>) -> f64 {
    let truth = cohort::ground_truth(scenario, start(), cohort::DEFAULT_DAYS);
    let options = Options::new(truth.as_of);
    let count = seeds.end - seeds.start;
    let hits = seeds
        .filter(|seed| {
            let entries =
                cohort::generate_variant(scenario, variant, *seed, start(), cohort::DEFAULT_DAYS);
            let report = analyse(&entries, &options);
            let recovery = cohort::check(&report, &truth);
            if !recovery.all() {
                eprintln!(
                    "{} {} seed {seed}: {recovery:?}\n{}",
                    scenario.name(),
                    variant.name(),
                    render_text(&report)
                );
            }
            recovery.all()
        })
        .count();
    hits as f64 / count as f64
}

/// The stories with a truth to recover (the null diaries are held to their false-direction
/// rate instead).
fn stories() -> impl Iterator<Item = Scenario> {
    Scenario::ALL
        .into_iter()
        .filter(|scenario| !Scenario::NULLS.contains(scenario))
}

#[test]
fn clean_diaries_are_recovered() {
    for scenario in stories() {
        let share = recovered_share(scenario, Variant::CLEAN, 0..40);
        assert!(share >= 0.95, "{}: {share}", scenario.name());
    }
}

/// Noisy diaries are recovered as often as the issue asks (90%), trends included: the
/// correlation corrections must not cost the power to see a real change.
#[test]
fn noisy_diaries_are_recovered() {
    for scenario in stories() {
        let share = recovered_share(scenario, Variant::NOISY, 200..240);
        assert!(share >= 0.90, "{}: {share}", scenario.name());
    }
}

#[test]
fn noisy_sparse_diaries_are_mostly_recovered() {
    for scenario in stories() {
        let share = recovered_share(scenario, Variant::NOISY_SPARSE, 100..140);
        let floor = match scenario {
            Scenario::ImprovingWithTreatment | Scenario::Worsening => 0.40,
            _ => 0.75,
        };
        assert!(share >= floor, "{}: {share}", scenario.name());
    }
}

/// Share of `seeds` null diaries (no trend, correlated days) with any measure read as
/// improving or worsening.
fn false_direction_share(scenario: Scenario, variant: Variant, seeds: std::ops::Range<u64>) -> f64 {
    let truth = cohort::ground_truth(scenario, start(), cohort::DEFAULT_DAYS);
    let count = seeds.end - seeds.start;
    let false_directions = seeds
        .filter(|seed| {
            let entries =
                cohort::generate_variant(scenario, variant, *seed, start(), cohort::DEFAULT_DAYS);
            let report = analyse(&entries, &Options::new(truth.as_of));
            !cohort::check(&report, &truth).no_false_direction
        })
        .count();
    false_directions as f64 / count as f64
}

/// The target: at most 10% of reports on diaries without a trend name a direction,
/// with days correlated at 0.3, 0.6 and even 0.8, however the diary is logged. Held on the
/// 600 diaries of each correlation together; each way of logging on its own 200 gets a
/// sampling allowance (at a true rate of 7%, 200 diaries scatter by about 2 points).
#[test]
fn correlated_days_without_a_trend_rarely_read_as_a_trend() {
    for scenario in Scenario::NULLS {
        let shares: Vec<f64> = Variant::ALL
            .iter()
            .map(|variant| false_direction_share(scenario, *variant, 0..200))
            .collect();
        let pooled = shares.iter().sum::<f64>() / shares.len() as f64;
        assert!(pooled <= 0.10, "{}: {shares:?}", scenario.name());
        assert!(
            shares.iter().all(|share| *share <= 0.12),
            "{}: {shares:?}",
            scenario.name()
        );
    }
}

#[test]
fn generation_is_deterministic_for_a_seed() {
    let a = cohort::generate_variant(Scenario::Mixed, Variant::NOISY_SPARSE, 9, start(), 90);
    let b = cohort::generate_variant(Scenario::Mixed, Variant::NOISY_SPARSE, 9, start(), 90);
    let c = cohort::generate_variant(Scenario::Mixed, Variant::NOISY_SPARSE, 10, start(), 90);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.iter().all(|entry| entry.id.get_version_num() == 7));
}

fn entry(day: NaiveDate, fields: serde_json::Value) -> Entry {
    let mut object = serde_json::json!({
        "id": uuid::Uuid::now_v7(),
        "day": day,
        "recorded_at": format!("{day}T08:00:00+00:00"),
        "backfilled": false,
    });
    if let (Some(target), Some(extra)) = (object.as_object_mut(), fields.as_object()) {
        target.extend(extra.clone());
    }
    serde_json::from_value(object).unwrap()
}

fn foot_day(day: NaiveDate, first_step: u8) -> Entry {
    entry(
        day,
        serde_json::json!({
            "first_step_pain": first_step, "rest_pain": 5, "sitting_pain": 1, "activity_pain": 4,
            "heel_tender": true, "numbness": "none", "radiating": false, "weakness": false,
        }),
    )
}

#[test]
fn four_weeks_of_foot_days_read_as_plantar_fasciitis_like() {
    let entries: Vec<Entry> = (0..28)
        .map(|i| foot_day(start() + Days::new(i), 7 + (i % 2) as u8))
        .collect();
    let report = analyse(&entries, &Options::new(start() + Days::new(27)));
    assert_eq!(report.pattern.kind, PatternKind::PlantarFasciitisLike);
    assert_eq!(report.pattern.days_needed, 0);
    assert_eq!(report.adherence.days_logged, 28);
    assert_eq!(report.trends.first_step_pain.direction, Direction::Stable);
    assert!(report.red_flags.is_empty());
    assert!(report.pattern.summary.contains("consistent with"));
}

#[test]
fn two_entries_are_insufficient_data() {
    let entries = vec![foot_day(start(), 7), foot_day(start() + Days::new(1), 8)];
    let report = analyse(&entries, &Options::new(start() + Days::new(1)));
    assert_eq!(report.pattern.kind, PatternKind::InsufficientData);
    assert_eq!(report.pattern.days_needed, 5);
    assert_eq!(
        report.trends.first_step_pain.direction,
        Direction::InsufficientData
    );
    assert!(report.pattern.summary.contains("5 more"));
}

#[test]
fn deleted_and_future_entries_are_ignored() {
    let as_of = start() + Days::new(27);
    let mut entries: Vec<Entry> = (0..28)
        .map(|i| foot_day(start() + Days::new(i), 7))
        .collect();
    let alarming = serde_json::json!({"numbness": "severe", "weakness": true});
    let mut deleted = entry(as_of, alarming.clone());
    deleted.deleted = true;
    entries.push(deleted);
    entries.push(entry(as_of + Days::new(1), alarming));
    let report = analyse(&entries, &Options::new(as_of));
    assert!(report.red_flags.is_empty(), "{:?}", report.red_flags);
    assert_eq!(report.pattern.kind, PatternKind::PlantarFasciitisLike);
}

#[test]
fn numbness_after_clear_weeks_is_a_new_red_flag_with_dates() {
    let as_of = start() + Days::new(41);
    let mut entries: Vec<Entry> = (0..42)
        .map(|i| foot_day(start() + Days::new(i), 7))
        .collect();
    let onset = start() + Days::new(38);
    entries.push(entry(onset, serde_json::json!({"numbness": "mild"})));
    let report = analyse(&entries, &Options::new(as_of));
    let flag = &report.red_flags[0];
    assert_eq!(flag.kind, RedFlagKind::NewNerveSigns);
    assert_eq!(flag.dates, vec![onset]);
    assert!(flag.sentence.contains(&format!("new since {onset}")));
    assert!(flag.sentence.contains("clinician"));
}

#[test]
fn wording_never_diagnoses() {
    for scenario in Scenario::ALL {
        let truth = cohort::ground_truth(scenario, start(), 90);
        let entries = cohort::generate_variant(scenario, Variant::NOISY, 3, start(), 90);
        let text = render_text(&analyse(&entries, &Options::new(truth.as_of))).to_lowercase();
        for forbidden in ["you have", "diagnos"] {
            assert!(!text.contains(forbidden), "{forbidden}: {text}");
        }
    }
}

#[test]
fn weakness_appearing_on_most_recent_days_is_flagged_as_worsening() {
    let as_of = start() + Days::new(55);
    let entries: Vec<Entry> = (0..56)
        .map(|i| {
            let day = start() + Days::new(i);
            // No weakness for six weeks, then on every other day of the last two.
            let weak = i >= 42 && i % 2 == 0;
            entry(
                day,
                serde_json::json!({"first_step_pain": 3, "sitting_pain": 6, "weakness": weak, "radiating": true}),
            )
        })
        .collect();
    let report = analyse(&entries, &Options::new(as_of));
    let kinds: Vec<RedFlagKind> = report.red_flags.iter().map(|flag| flag.kind).collect();
    // Growing weakness is urgent: it comes first.
    assert_eq!(
        kinds,
        vec![RedFlagKind::WorseningWeakness, RedFlagKind::NewNerveSigns]
    );
    let worsening = &report.red_flags[0];
    assert_eq!(worsening.dates.len(), 7);
    assert!(worsening
        .dates
        .iter()
        .all(|date| *date >= start() + Days::new(42)));
}

#[test]
fn six_weeks_of_stretching_without_improvement_is_flagged() {
    let as_of = start() + Days::new(59);
    let entries: Vec<Entry> = (0..60)
        .map(|i| {
            entry(
                start() + Days::new(i),
                serde_json::json!({"first_step_pain": 7, "rest_pain": 5, "treatments": ["stretching"]}),
            )
        })
        .collect();
    let report = analyse(&entries, &Options::new(as_of));
    let flag = report
        .red_flags
        .iter()
        .find(|flag| flag.kind == RedFlagKind::NoImprovementOnConservativeCare)
        .expect("flag");
    assert_eq!(flag.dates[0], start());
    assert!(flag.sentence.contains("stretching"));
}
