//! Properties of the statistics and of the analysis that must hold for any input.

use chrono::{DateTime, Days, FixedOffset, NaiveDate};
use heeldiary_core::{Entry, Location, Severity, Treatment, Trigger};
use heeldiary_trends::cohort::{self, Scenario, Variant};
use heeldiary_trends::stats::{mann_kendall, theil_sen};
use heeldiary_trends::{analyse, render_text, Direction, Options};
use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;

fn base() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 5).unwrap()
}

fn series() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec((0u8..=10).prop_map(f64::from), 3..40)
}

proptest! {
    #[test]
    fn shifting_all_values_keeps_the_mann_kendall_result(values in series(), shift in -5i8..=5) {
        let shifted: Vec<f64> = values.iter().map(|v| v + f64::from(shift)).collect();
        let (a, b) = (mann_kendall(&values).unwrap(), mann_kendall(&shifted).unwrap());
        prop_assert_eq!(a.s, b.s);
        prop_assert_eq!(a.var_s, b.var_s);
        prop_assert_eq!(a.p, b.p);
        prop_assert_eq!(a.s.signum(), b.s.signum());
    }

    #[test]
    fn scaling_keeps_the_direction_and_reversing_flips_it(values in series(), scale in 1u8..5) {
        let scaled: Vec<f64> = values.iter().map(|v| v * f64::from(scale)).collect();
        let reversed: Vec<f64> = values.iter().rev().copied().collect();
        let test = mann_kendall(&values).unwrap();
        prop_assert_eq!(mann_kendall(&scaled).unwrap().s, test.s);
        prop_assert_eq!(mann_kendall(&reversed).unwrap().s, -test.s);
        prop_assert!((0.0..=1.0).contains(&test.p));
        prop_assert!((-1.0..=1.0).contains(&test.tau));
    }

    #[test]
    fn theil_sen_slope_ignores_a_constant_and_recovers_a_line(
        values in series(), shift in -5i8..=5, slope in -3i8..=3,
    ) {
        let times: Vec<f64> = (0..values.len()).map(|i| (i * 2) as f64).collect();
        let shifted: Vec<f64> = values.iter().map(|v| v + f64::from(shift)).collect();
        let a = theil_sen(&times, &values).unwrap();
        let b = theil_sen(&times, &shifted).unwrap();
        prop_assert!((a.slope - b.slope).abs() < 1e-12);
        let line: Vec<f64> = times.iter().map(|t| 1.0 + f64::from(slope) * t).collect();
        prop_assert!((theil_sen(&times, &line).unwrap().slope - f64::from(slope)).abs() < 1e-12);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn the_order_of_entries_does_not_change_the_report(
        seed in any::<u64>(), scenario in 0usize..6, variant in 0usize..3, shuffle in any::<u64>(),
    ) {
        let days = 80;
        let mut entries = cohort::generate_variant(
            Scenario::ALL[scenario], Variant::ALL[variant], seed, base(), days,
        );
        let options = Options::new(base() + Days::new(u64::from(days) - 1));
        let report = analyse(&entries, &options);
        entries.shuffle(&mut rand::rngs::StdRng::seed_from_u64(shuffle));
        prop_assert_eq!(analyse(&entries, &options), report);
    }
}

fn pick<T: Copy + std::fmt::Debug>(all: &'static [T]) -> impl Strategy<Value = Vec<T>> {
    prop::sample::subsequence(all.to_vec(), 0..=all.len().min(4))
}

fn entry() -> impl Strategy<Value = Entry> {
    let pains = prop::array::uniform4(prop::option::of(any::<u8>()));
    let answers = prop::array::uniform5(prop::option::of(any::<bool>()));
    let lists = (
        pick(Location::ALL),
        pick(Trigger::ALL),
        pick(Trigger::ALL),
        pick(Treatment::ALL),
    );
    (
        0u64..200,
        pains,
        answers,
        prop::option::of(prop::sample::select(Severity::ALL.to_vec())),
        lists,
        any::<bool>(),
        any::<u128>(),
    )
        .prop_map(|(day, pains, answers, numbness, lists, deleted, id)| {
            let day = base() + Days::new(day);
            let recorded_at: DateTime<FixedOffset> =
                day.and_hms_opt(8, 0, 0).unwrap().and_utc().fixed_offset();
            Entry {
                first_step_pain: pains[0],
                rest_pain: pains[1],
                sitting_pain: pains[2],
                activity_pain: pains[3],
                locations: lists.0,
                radiating: answers[0],
                numbness,
                weakness: answers[1],
                heel_tender: answers[2],
                morning_stiffness: answers[3],
                night_pain: answers[4],
                worse_with: lists.1,
                eased_with: lists.2,
                treatments: lists.3,
                deleted,
                ..Entry::new(uuid::Uuid::from_u128(id), day, recorded_at)
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_entries_never_panic_and_keep_figures_in_range(
        entries in prop::collection::vec(entry(), 0..250),
        as_of in 0u64..260,
        window in 0u32..400,
    ) {
        let options = Options::new(base() + Days::new(as_of)).with_window_days(window);
        let report = analyse(&entries, &options);
        prop_assert!(!render_text(&report).is_empty());
        let json = serde_json::to_value(&report).unwrap();
        prop_assert_eq!(json.as_object().unwrap().len(), 7);
        prop_assert!((0.0..=1.0).contains(&report.adherence.ratio));
        prop_assert!(report.adherence.days_logged <= report.adherence.days_in_window);
        prop_assert!((0.0..=1.0).contains(&report.pattern.scores.foot));
        prop_assert!((0.0..=1.0).contains(&report.pattern.scores.back));
        for trend in report.trends.all() {
            if let Some(p) = trend.p {
                prop_assert!((0.0..=1.0).contains(&p));
            }
            // A direction is named only when the line and the step agree on it.
            let named = match trend.direction {
                Direction::Improving => -1.0,
                Direction::Worsening => 1.0,
                _ => continue,
            };
            prop_assert!(trend.p_adjusted.is_some_and(|p| p < 0.10), "{}", trend.sentence);
            prop_assert_eq!(trend.s.map(|s| (s as f64).signum()), Some(named), "{}", trend.sentence);
            if let Some(step) = &trend.step {
                prop_assert_eq!(step.shift.signum(), named, "{}", trend.sentence);
            }
        }
        for flag in &report.red_flags {
            prop_assert!(!flag.dates.is_empty());
            prop_assert!(flag.sentence.contains("clinician"));
            prop_assert!(flag.dates.iter().all(|date| *date <= options.as_of));
        }
    }
}
