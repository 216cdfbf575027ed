//! Clinical safety: one diary per fault the clinical review found, each read as a new user's
//! diary would be. Urgent signs come first and point to urgent care; stenosis, heel-nerve,
//! mixed and unclear pictures get readings of their own; steps, serial correlation and
//! back-filled days do not mislead; treatments are worded as associations; the patient's text
//! speaks plainly.

use chrono::{Days, NaiveDate};
use heeldiary_core::Entry;
use heeldiary_trends::{
    analyse, render, urgent_alert, Audience, Direction, Evidence, Options, PatternKind, RedFlag,
    RedFlagKind, Report, Sign, SubReading, Urgency, Verdict,
};
use serde_json::{json, Value};

fn end() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
}

/// Day `i` of a `days`-long diary ending on [`end`].
fn day(i: u64, days: u64) -> NaiveDate {
    end() - Days::new(days - 1 - i)
}

fn entry_at(day: NaiveDate, recorded: &str, fields: Value) -> Entry {
    let mut object = json!({
        "id": uuid::Uuid::now_v7(),
        "day": day,
        "recorded_at": recorded,
        "backfilled": false,
    });
    if let (Some(target), Some(extra)) = (object.as_object_mut(), fields.as_object()) {
        target.extend(extra.clone());
    }
    let mut entry: Entry = serde_json::from_value(object).unwrap();
    entry.backfilled = Entry::is_backfilled(entry.day, &entry.recorded_at);
    entry
}

fn entry(day: NaiveDate, fields: Value) -> Entry {
    entry_at(day, &format!("{day}T08:00:00+00:00"), fields)
}

fn diary(days: u64, make: impl Fn(u64) -> Value) -> Vec<Entry> {
    (0..days).map(|i| entry(day(i, days), make(i))).collect()
}

fn report(entries: &[Entry]) -> Report {
    analyse(entries, &Options::new(end()))
}

fn kinds(report: &Report) -> Vec<RedFlagKind> {
    report.red_flags.iter().map(|flag| flag.kind).collect()
}

fn back_day(i: u64) -> Value {
    json!({
        "sitting_pain": 6 + i % 2, "first_step_pain": 2, "activity_pain": 4, "radiating": true,
        "numbness": "moderate", "weakness": false, "side": "left",
        "locations": ["lower_back", "thigh", "calf", "heel_bottom"],
    })
}

/// A back-related diary of `days` days in which `field` takes the value `value` gives each day.
fn back_diary_where(days: u64, field: &str, value: impl Fn(u64) -> Value) -> Vec<Entry> {
    diary(days, |i| {
        let mut day = back_day(i);
        day[field] = value(i);
        day
    })
}

/// The report's flag of `kind`; fails naming the flags there are.
fn flag(report: &Report, kind: RedFlagKind) -> &RedFlag {
    report
        .red_flags
        .iter()
        .find(|f| f.kind == kind)
        .unwrap_or_else(|| panic!("no {kind:?} flag among {:?}", kinds(report)))
}

/// The pattern's evidence item for `sign`.
fn evidence(report: &Report, sign: Sign) -> &Evidence {
    report
        .pattern
        .evidence
        .iter()
        .find(|item| item.sign == sign)
        .unwrap_or_else(|| panic!("{sign:?} is not among the evidence"))
}

#[test]
fn saddle_numbness_is_an_urgent_flag_at_the_top_dated_by_start_and_change() {
    let entries = back_diary_where(28, "saddle_numbness", |i| json!(i >= 25));
    let report = report(&entries);
    let first = &report.red_flags[0];
    assert_eq!(first.kind, RedFlagKind::SaddleNumbness);
    assert_eq!(first.urgency, Urgency::Urgent);
    assert_eq!(first.started, day(25, 28));
    assert_eq!(first.last_changed, day(25, 28));
    assert!(
        first.patient_sentence.contains("urgent care today"),
        "{}",
        first.patient_sentence
    );
    // Urgent flags precede the others.
    let urgencies: Vec<Urgency> = report.red_flags.iter().map(|f| f.urgency).collect();
    let mut sorted = urgencies.clone();
    sorted.sort();
    assert_eq!(urgencies, sorted);
    assert!(kinds(&report).contains(&RedFlagKind::NewNerveSigns));
}

#[test]
fn an_old_bladder_change_is_soon_not_urgent() {
    let entries = back_diary_where(42, "bladder_bowel_change", |i| json!(i == 5));
    let report = report(&entries);
    let flag = flag(&report, RedFlagKind::BladderBowelChange);
    assert_eq!(flag.urgency, Urgency::Soon);
    assert_eq!(flag.last_changed, day(6, 42), "it went away the next day");
}

#[test]
fn three_days_of_new_weakness_are_urgent_without_waiting_for_a_test() {
    let entries = back_diary_where(42, "weakness", |i| json!(i >= 39));
    let report = report(&entries);
    let flag = flag(&report, RedFlagKind::NewWeakness);
    assert_eq!(flag.urgency, Urgency::Urgent);
    assert_eq!(flag.started, day(39, 42));
    assert_eq!(flag.dates.len(), 3);
    // Two days are not yet a run; weakness all along is not new.
    let two = back_diary_where(42, "weakness", |i| json!(i >= 40));
    assert!(!kinds(&analyse(&two, &Options::new(end()))).contains(&RedFlagKind::NewWeakness));
    let always = back_diary_where(42, "weakness", |_| json!(true));
    assert!(!kinds(&analyse(&always, &Options::new(end()))).contains(&RedFlagKind::NewWeakness));
}

#[test]
fn nerve_signs_that_turn_two_sided_are_urgent() {
    let entries = back_diary_where(42, "side", |i| json!(if i >= 35 { "both" } else { "left" }));
    let report = report(&entries);
    let flag = flag(&report, RedFlagKind::NerveSignsBothSides);
    assert_eq!(flag.urgency, Urgency::Urgent);
    assert_eq!(flag.started, day(35, 42));
    assert!(flag.sentence.contains("one side"), "{}", flag.sentence);
}

#[test]
fn fever_with_night_pain_is_a_soon_flag() {
    let entries = diary(28, |i| {
        json!({"first_step_pain": 5, "sitting_pain": 3, "night_pain": i % 3 == 0,
               "fever_or_weight_loss": i >= 20, "radiating": false, "numbness": "none"})
    });
    let report = report(&entries);
    let flag = flag(&report, RedFlagKind::FeverOrWeightLoss);
    assert_eq!(flag.urgency, Urgency::Soon);
    assert!(flag.sentence.contains("night"), "{}", flag.sentence);
}

#[test]
fn an_entry_with_an_urgent_sign_is_answered_when_logged_and_an_ordinary_one_is_not() {
    let saddle = entry(end(), json!({"saddle_numbness": true, "sitting_pain": 6}));
    let alert = urgent_alert(&[], &saddle).expect("alert");
    assert_eq!(alert.urgency, Urgency::Urgent);
    assert!(
        alert.message.contains("urgent care today"),
        "{}",
        alert.message
    );
    assert!(!alert.message.to_lowercase().contains("you have"));
    let ordinary = entry(end(), json!({"first_step_pain": 5}));
    assert_eq!(urgent_alert(&[], &ordinary), None);
    // Weakness on its third day in a row is urgent from the diary, not the entry alone.
    let mut history = back_diary_where(20, "weakness", |i| json!(i >= 17));
    let today = history.pop().unwrap();
    assert!(urgent_alert(&history, &today).is_some());
}

fn stenosis_day(i: u64) -> Value {
    json!({
        "first_step_pain": i % 2, "sitting_pain": 0, "rest_pain": 1, "activity_pain": 7,
        "side": "both", "heel_tender": false, "morning_stiffness": false,
        "numbness": if i % 2 == 0 { "none" } else { "mild" }, "radiating": false,
        "locations": ["calf", "foot", "heel_bottom"],
        "worse_with": ["walking", "standing"], "eased_with": ["sitting", "bending"],
    })
}

#[test]
fn walking_pain_eased_by_sitting_reads_back_related_with_a_stenosis_like_reading() {
    let report = report(&diary(28, stenosis_day));
    assert_eq!(
        report.pattern.kind,
        PatternKind::BackRelated,
        "{}",
        report.pattern.summary
    );
    assert_eq!(report.pattern.sub_reading, Some(SubReading::StenosisLike));
    assert!(report.pattern.summary.contains("stenosis-like"));
    let eased = evidence(&report, Sign::EasedBySittingOrBending);
    assert_eq!(eased.days_present, 28);
}

#[test]
fn sitting_pain_and_bending_the_other_way_read_disc_like() {
    let report = report(&back_diary_where(28, "worse_with", |_| {
        json!(["sitting", "bending"])
    }));
    assert_eq!(report.pattern.kind, PatternKind::BackRelated);
    assert_eq!(report.pattern.sub_reading, Some(SubReading::DiscLike));
}

#[test]
fn burning_heel_with_night_pain_and_no_radiation_reads_heel_nerve_like() {
    let report = report(&diary(28, |i| {
        json!({
            "first_step_pain": 2 + i % 3, "rest_pain": 6, "sitting_pain": 4, "activity_pain": 5,
            "night_pain": true, "numbness": if i % 2 == 0 { "mild" } else { "moderate" },
            "radiating": false, "heel_tender": i % 4 == 0, "side": "left",
            "locations": ["heel_bottom", "arch"], "worse_with": ["standing"],
        })
    }));
    assert_eq!(
        report.pattern.kind,
        PatternKind::HeelNerveLike,
        "{}",
        report.pattern.summary
    );
    assert!(
        report.pattern.scores.back < 0.25,
        "{:?}",
        report.pattern.scores
    );
}

#[test]
fn numbness_with_radiating_pain_still_counts_for_the_back() {
    let report = report(&diary(28, back_day));
    assert_eq!(report.pattern.kind, PatternKind::BackRelated);
    assert!(report.pattern.scores.heel_nerve < 0.1);
}

#[test]
fn a_high_first_step_with_radiating_numbness_is_mixed_even_when_sitting_is_higher() {
    let report = report(&diary(28, |i| {
        json!({
            "first_step_pain": 7, "sitting_pain": 8 + i % 2, "activity_pain": 4, "rest_pain": 5,
            "heel_tender": true, "radiating": true, "numbness": "moderate", "weakness": false,
            "locations": ["heel_bottom", "lower_back", "buttock"],
        })
    }));
    assert_eq!(
        report.pattern.kind,
        PatternKind::Mixed,
        "{}",
        report.pattern.summary
    );
}

#[test]
fn weak_signs_on_both_sides_are_unclear_with_what_is_missing() {
    let report = report(&diary(
        28,
        |i| json!({"first_step_pain": 2 + i % 2, "sitting_pain": 2, "activity_pain": 3}),
    ));
    assert_eq!(
        report.pattern.kind,
        PatternKind::Unclear,
        "{}",
        report.pattern.summary
    );
    assert!(!report.pattern.missing.is_empty());
    assert!(report.pattern.summary.contains("missing"));
}

#[test]
fn a_diary_typed_in_one_evening_is_counted_as_back_filled() {
    let entries: Vec<Entry> = (0..28)
        .map(|i| {
            entry_at(
                day(i, 28),
                &format!("{}T21:00:00+00:00", end()),
                json!({"first_step_pain": 7, "activity_pain": 3, "heel_tender": true, "numbness": "none"}),
            )
        })
        .collect();
    let report = report(&entries);
    // The last two days were written within a day.
    assert_eq!(report.pattern.days_backfilled, 26);
    assert_eq!(report.adherence.days_backfilled, 26);
    assert!(
        report.pattern.summary.contains("26 of the 28 days"),
        "{}",
        report.pattern.summary
    );
    assert_eq!(report.pattern.kind, PatternKind::PlantarFasciitisLike);
}

#[test]
fn back_filled_days_weigh_half_in_the_evidence_shares_too() {
    // Fourteen daily entries without a tender heel, then fourteen typed in one evening with one.
    let entries: Vec<Entry> = (0..28)
        .map(|i| {
            let recorded = if i < 14 {
                format!("{}T08:00:00+00:00", day(i, 28))
            } else {
                format!("{}T21:00:00+00:00", end() + Days::new(3))
            };
            let tender = i >= 14;
            entry_at(
                day(i, 28),
                &recorded,
                json!({"first_step_pain": 7, "activity_pain": 3, "heel_tender": tender}),
            )
        })
        .collect();
    let report = analyse(&entries, &Options::new(end()));
    let tender = evidence(&report, Sign::HeelTender);
    assert_eq!((tender.days_present, tender.days_observed), (14, 28));
    assert_eq!(tender.days_backfilled, 14);
    // 14 × 0.5 / (14 + 14 × 0.5) = 1/3, not the unweighted 1/2.
    assert!((tender.share - 0.33).abs() < 0.006, "{}", tender.share);
    assert!(
        tender
            .sentence
            .contains("14 of the 28 days back-filled, counted half"),
        "{}",
        tender.sentence
    );
    // A diary logged daily shares unweighted.
    let daily = diary(
        28,
        |i| json!({"first_step_pain": 7, "activity_pain": 3, "heel_tender": i >= 14}),
    );
    let report = analyse(&daily, &Options::new(end()));
    let tender = evidence(&report, Sign::HeelTender);
    assert_eq!(tender.days_backfilled, 0);
    assert_eq!(tender.share, 0.5);
    assert!(
        !tender.sentence.contains("back-filled"),
        "{}",
        tender.sentence
    );
}

#[test]
fn a_step_in_whole_number_nerve_signs_is_reported_not_read_as_stable() {
    // Nerve signs 3 (moderate numbness) for four weeks, then 5 on 10 of the last 14 days.
    let entries = diary(42, |i| {
        let stepped = i >= 28 && i % 7 < 5;
        json!({"numbness": if stepped { "severe" } else { "moderate" }, "radiating": true,
               "weakness": stepped, "first_step_pain": 3, "sitting_pain": 5})
    });
    let report = report(&entries);
    let nerve = &report.trends.nerve_signs;
    assert_eq!(nerve.direction, Direction::Worsening, "{}", nerve.sentence);
    let step = nerve.step.as_ref().expect("a step");
    assert_eq!(step.shift, 2.0);
    assert!(nerve.sentence.contains("Hodges-Lehmann"));
}

#[test]
fn fitted_levels_stay_on_the_scale_and_a_zero_change_is_never_called_clear() {
    let entries = diary(
        28,
        |i| json!({"first_step_pain": if i < 20 { 3 } else { 0 }}),
    );
    let report = report(&entries);
    for trend in report.trends.all() {
        for level in [trend.start_level, trend.end_level].into_iter().flatten() {
            assert!((0.0..=10.0).contains(&level), "{}", trend.sentence);
        }
        if trend.change == Some(0.0) {
            assert!(
                !trend.sentence.contains("statistically clear"),
                "{}",
                trend.sentence
            );
        }
    }
}

fn foot_then(days: u64, treatments: impl Fn(u64) -> Value) -> Vec<Entry> {
    diary(days, |i| {
        let pain = if i < 40 { 7 } else { 2 };
        json!({"first_step_pain": pain, "activity_pain": 2, "heel_tender": true,
               "numbness": "none", "treatments": treatments(i)})
    })
}

#[test]
fn treatments_started_together_are_reported_together() {
    let entries = foot_then(90, |i| match i {
        0..=29 => json!([]),
        30 => json!(["stretching"]),
        _ => json!(["stretching", "orthotics"]),
    });
    let report = report(&entries);
    assert_eq!(report.treatments.len(), 1, "{:#?}", report.treatments);
    let response = &report.treatments[0];
    assert_eq!(response.started_with.len(), 1);
    assert_eq!(response.helped, Verdict::Helped);
    assert!(
        response.sentence.contains("cannot separate them"),
        "{}",
        response.sentence
    );
    assert!(
        response.sentence.contains("time alone"),
        "{}",
        response.sentence
    );
    assert!(response.patient_sentence.contains("cannot tell which"));
}

#[test]
fn every_helped_sentence_says_pain_often_improves_with_time_alone() {
    let entries = foot_then(90, |i| {
        if i >= 30 {
            json!(["night_splint"])
        } else {
            json!([])
        }
    });
    let report = report(&entries);
    let response = &report.treatments[0];
    assert_eq!(response.helped, Verdict::Helped);
    assert!(response.started_with.is_empty());
    assert!(response.sentence.contains("time alone"));
    assert!(response.patient_sentence.contains("time alone"));
    assert!(!response.sentence.contains("having helped"));
}

const STATISTICS_WORDS: [&str; 6] = ["mann", "kendall", "theil", "p =", "p <", "_like"];

#[test]
fn the_patient_text_opens_with_the_urgent_sign_and_names_no_statistics() {
    let entries = back_diary_where(28, "saddle_numbness", |i| json!(i >= 25));
    let report = report(&entries);
    let text = render(&report, Audience::Patient);
    let urgent_line = text
        .lines()
        .position(|line| line.to_lowercase().contains("urgent"))
        .expect("urgent line");
    assert!(urgent_line <= 2, "{text}");
    let lower = text.to_lowercase();
    for word in STATISTICS_WORDS
        .into_iter()
        .chain(["tau", "you have", "diagnosed with"])
    {
        assert!(!lower.contains(word), "{word} in {text}");
    }
    let clinician = render(&report, Audience::Clinician);
    assert!(clinician.contains("Mann-Kendall"));
    assert!(clinician.contains("saddle_numbness"));
}

#[test]
fn no_red_flags_says_which_signs_the_diary_asked_about() {
    let entries = diary(28, |_| {
        json!({"first_step_pain": 7, "activity_pain": 3, "heel_tender": true,
               "numbness": "none", "weakness": false, "saddle_numbness": false})
    });
    let report = report(&entries);
    assert!(report.red_flags.is_empty());
    let text = render(&report, Audience::Patient);
    assert!(
        text.contains("numbness between the legs (28 days answered)"),
        "{text}"
    );
    assert!(
        text.contains("fever or weight loss (0 days answered)"),
        "{text}"
    );
}
