//! The day summaries a streamed caller builds one entry at a time give the same period report
//! as the analysis over the whole list of entries, whatever order the entries come in.

use chrono::{Datelike, Days, Months, NaiveDate};
use heeldiary_trends::{analyse, cohort, DayHistory, Options};

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
