//! The day summaries a streamed caller builds one entry at a time give the same period report
//! as the analysis over the whole list of entries, whatever order the entries come in, and
//! period summaries hold the figures of those reports, whatever order the periods come in.

use chrono::{DateTime, Datelike, Days, FixedOffset, Months, NaiveDate};
use heeldiary_core::{Entry, Severity, Side, Treatment};
use heeldiary_trends::{
    analyse, cohort, DayHistory, Options, PeriodSummary, RedFlagKind, Report, TrendSummary,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn month_options(month: NaiveDate) -> Options {
    let last_day = (month + Months::new(1)).pred_opt().unwrap();
    Options::new(last_day).with_window_days(last_day.day())
}

#[test]
fn period_reports_equal_the_analysis_of_the_entries_in_any_order() {
    let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    for (seed, scenario) in [
        cohort::Scenario::FootPattern,
        cohort::Scenario::BackPattern,
        cohort::Scenario::PatternShift,
        cohort::Scenario::CaudaEquina,
        cohort::Scenario::ImprovingWithTreatment,
    ]
    .into_iter()
    .enumerate()
    {
        let entries = cohort::generate(scenario, seed as u64, start, 120);
        let mut in_order = DayHistory::default();
        let mut reversed = DayHistory::default();
        for entry in &entries {
            in_order.add(entry);
        }
        for entry in entries.iter().rev() {
            reversed.add(entry);
        }
        assert_eq!(in_order, reversed, "{scenario:?}");
        assert_eq!(in_order.first_day(), entries.iter().map(|e| e.day).min());
        for months in 0..4 {
            let options = month_options(start + Months::new(months));
            let mut full = analyse(&entries, &options);
            let period = in_order.period_report(&options);
            assert!(period.treatments.is_empty() && period.shifts.is_empty());
            full.treatments.clear();
            full.shifts.clear();
            assert_eq!(period, full, "{scenario:?}, month {months}");
        }
    }
}

#[test]
fn deleted_entries_and_days_after_the_analysis_date_are_left_out() {
    let start = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    let mut entries = cohort::generate(cohort::Scenario::BackPattern, 3, start, 60);
    for entry in entries.iter_mut().step_by(3) {
        entry.deleted = true;
    }
    let mut history = DayHistory::default();
    for entry in &entries {
        history.add(entry);
    }
    let live_days: std::collections::BTreeSet<NaiveDate> = entries
        .iter()
        .filter(|e| !e.deleted)
        .map(|e| e.day)
        .collect();
    assert_eq!(history.len(), live_days.len());
    let options = Options::new(start + Days::new(30));
    let mut full = analyse(&entries, &options);
    full.treatments.clear();
    full.shifts.clear();
    assert_eq!(history.period_report(&options), full);
}

/// What a period summary must hold: the figures of the report.
fn figures(report: &Report) -> PeriodSummary {
    PeriodSummary {
        window: report.window,
        days_logged: report.adherence.days_logged,
        pattern: report.pattern.kind,
        scores: report.pattern.scores,
        trends: report.trends.all().map(|trend| TrendSummary {
            measure: trend.measure,
            direction: trend.direction,
            n: trend.n,
            slope_per_week: trend.slope_per_week,
            p: trend.p,
        }),
        red_flags: report.red_flags.iter().map(|flag| flag.kind).collect(),
    }
}

/// A diary whose signs come and go: every few weeks each sign's chance of a "yes" changes
/// (never, rarely, half the days, most days, every day), days are skipped, some days have two
/// check-ins, and courses of treatment start and stop. Enough for every red flag to rise and
/// fall in a long diary.
fn changing_diary(seed: u64, start: NaiveDate, days: u32) -> Vec<Entry> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut entries = Vec::new();
    let mut chances = [0.0f64; 9];
    for offset in 0..days {
        if offset % 20 == 0 || rng.random_bool(0.03) {
            for chance in chances.iter_mut() {
                *chance = [0.0, 0.1, 0.5, 0.9, 1.0][rng.random_range(0..5)];
            }
        }
        if rng.random_bool(0.2) {
            continue;
        }
        let day = start + Days::new(u64::from(offset));
        let recorded_at: DateTime<FixedOffset> =
            day.and_hms_opt(8, 0, 0).unwrap().and_utc().fixed_offset();
        for _ in 0..rng.random_range(1..3) {
            let mut entry = Entry::new(uuid::Uuid::from_u128(rng.random()), day, recorded_at);
            let mut answer =
                |sign: usize| rng.random_bool(0.8).then(|| rng.random_bool(chances[sign]));
            entry.weakness = answer(0);
            entry.radiating = answer(1);
            entry.night_pain = answer(2);
            // The compression signs stay rare: only in stretches where they are unlikely.
            entry.saddle_numbness = answer(3).filter(|_| chances[3] < 0.2);
            entry.bladder_bowel_change = answer(4).filter(|_| chances[4] < 0.2);
            entry.fever_or_weight_loss = answer(5);
            entry.heel_tender = answer(6);
            let (numb, both) = (answer(7), answer(8));
            entry.numbness = numb.map(|yes| {
                if yes {
                    Severity::ALL[rng.random_range(1..Severity::ALL.len())]
                } else {
                    Severity::Absent
                }
            });
            entry.side = both.map(|yes| if yes { Side::Both } else { Side::Left });
            let mut pain = || rng.random_bool(0.7).then(|| rng.random_range(0..=10u8));
            entry.first_step_pain = pain();
            entry.rest_pain = pain();
            entry.sitting_pain = pain();
            entry.activity_pain = pain();
            if chances[6] > 0.4 && rng.random_bool(0.7) {
                entry.treatments = vec![Treatment::ALL[rng.random_range(0..Treatment::ALL.len())]];
            }
            entry.backfilled = rng.random_bool(0.1);
            entries.push(entry);
        }
    }
    entries
}

fn history_of(entries: &[Entry]) -> DayHistory {
    let mut history = DayHistory::default();
    for entry in entries {
        history.add(entry);
    }
    history
}

#[test]
fn period_summaries_hold_the_figures_of_the_period_reports() {
    let start = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
    let mut diaries: Vec<Vec<Entry>> = cohort::Scenario::ALL
        .into_iter()
        .enumerate()
        .map(|(seed, scenario)| cohort::generate(scenario, seed as u64, start, 150))
        .collect();
    diaries.extend((0..24).map(|seed| changing_diary(seed, start, 300)));
    let mut raised = std::collections::BTreeSet::new();
    for entries in &diaries {
        let history = history_of(entries);
        // Calendar months, and four weeks ending every week, each asked in order of one cursor.
        let months: Vec<Options> = (0..11)
            .map(|m| month_options(start + Months::new(m)))
            .collect();
        let weeks: Vec<Options> = (1..45)
            .map(|week| Options::new(start + Days::new(week * 7)))
            .collect();
        for periods in [months, weeks] {
            let mut summaries = history.summaries();
            for options in &periods {
                let summary = summaries.summary(options);
                let report = history.period_report(options);
                assert_eq!(summary, figures(&report), "{:?}", options.as_of);
                assert_eq!(history.period_summary(options), summary);
                raised.extend(summary.red_flags);
            }
        }
    }
    // The diaries raise every kind of flag, so every flag's summary was compared.
    let every: std::collections::BTreeSet<RedFlagKind> = [
        RedFlagKind::NewNerveSigns,
        RedFlagKind::WorseningWeakness,
        RedFlagKind::NoImprovementOnConservativeCare,
        RedFlagKind::SaddleNumbness,
        RedFlagKind::BladderBowelChange,
        RedFlagKind::NewWeakness,
        RedFlagKind::NerveSignsBothSides,
        RedFlagKind::FeverOrWeightLoss,
        RedFlagKind::NightPainNotEasing,
    ]
    .into();
    assert_eq!(raised, every);
}

#[test]
fn period_reports_of_changing_diaries_equal_the_analysis() {
    let start = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
    for seed in 0..8 {
        let entries = changing_diary(seed, start, 200);
        let history = history_of(&entries);
        for days in (20..200).step_by(30) {
            let options = Options::new(start + Days::new(days));
            let mut full = analyse(&entries, &options);
            full.treatments.clear();
            full.shifts.clear();
            assert_eq!(
                history.period_report(&options),
                full,
                "seed {seed}, day {days}"
            );
        }
    }
}

#[test]
fn summaries_asked_out_of_order_equal_those_asked_in_order() {
    let start = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
    let history = history_of(&changing_diary(7, start, 200));
    let periods: Vec<Options> = (1..28)
        .map(|week| Options::new(start + Days::new(week * 7)))
        .collect();
    let mut in_order = history.summaries();
    let expected: Vec<PeriodSummary> = periods.iter().map(|o| in_order.summary(o)).collect();
    let mut shuffled = history.summaries();
    for index in [20, 3, 3, 26, 0, 13, 12, 25] {
        assert_eq!(
            shuffled.summary(&periods[index]),
            expected[index],
            "{index}"
        );
    }
}
