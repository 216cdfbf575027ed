//! Accuracy of the trend analysis on the synthetic cohort: for each scenario and each way of
//! logging (clean, noisy, noisy with 40% of days missing), the share of patients whose report
//! recovers the known truth (pattern, first-step trend, treatment verdict, shift, red flags,
//! and no direction named where the story has no trend). Then the false-direction rate on the
//! null diaries (no trend, days correlated at 0.3, 0.6 and 0.8): the share of reports naming
//! any measure improving or worsening.
//!
//! Usage: `trends-accuracy [--patients N] [--seed S] [--seeds K] [--days D]` (N patients per
//! scenario and variant, default 200; K cohorts seeded S, S+1, …, pooled so that a figure is
//! not one lucky draw, default 1; diaries of D days, default 90).

use std::process::ExitCode;

use chrono::NaiveDate;
use heeldiary_trends::cohort::{self, Recovery, Scenario, Variant};
use heeldiary_trends::{analyse, Options};
use rayon::prelude::*;

struct Args {
    patients: u64,
    seed: u64,
    seeds: u64,
    days: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        patients: 200,
        seed: 1,
        seeds: 1,
        days: cohort::DEFAULT_DAYS,
    };
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        let mut value = |name: &str| words.next().ok_or_else(|| format!("{name} needs a value"));
        match word.as_str() {
            "--patients" => {
                args.patients = value("--patients")?
                    .parse()
                    .map_err(|e| format!("--patients: {e}"))?
            }
            "--seed" => {
                args.seed = value("--seed")?
                    .parse()
                    .map_err(|e| format!("--seed: {e}"))?
            }
            "--seeds" => {
                args.seeds = value("--seeds")?
                    .parse()
                    .map_err(|e| format!("--seeds: {e}"))?
            }
            "--days" => {
                args.days = value("--days")?
                    .parse()
                    .map_err(|e| format!("--days: {e}"))?
            }
            "-h" | "--help" => {
                return Err(
                    "usage: trends-accuracy [--patients N] [--seed S] [--seeds K] [--days D]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if args.seeds == 0 {
        return Err("--seeds must be at least 1".into());
    }
    if args.days < cohort::MIN_DAYS {
        return Err(format!("--days must be at least {}", cohort::MIN_DAYS));
    }
    Ok(args)
}

/// Share of patients (in %) for which `part` holds.
fn percent(recoveries: &[Recovery], part: impl Fn(&Recovery) -> bool) -> f64 {
    let hits = recoveries.iter().filter(|r| part(r)).count();
    100.0 * hits as f64 / recoveries.len().max(1) as f64
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let start = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap_or_default();
    let seeds = args.seed..args.seed.saturating_add(args.seeds);
    let seed_text = if args.seeds == 1 {
        format!("seed {}", args.seed)
    } else {
        format!("seeds {} to {}", seeds.start, seeds.end - 1)
    };
    println!(
        "Recovery of the ground truth, {} patients per cell, {}-day diaries, {seed_text}",
        args.patients * args.seeds,
        args.days,
    );
    println!(
        "{:<26} {:<20} {:>7} | {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "scenario", "variant", "all", "pattern", "trend", "treat", "shift", "flags", "no-false"
    );
    let mut nulls: Vec<(Scenario, String, f64)> = Vec::new();
    let mut totals: Vec<(String, Vec<Recovery>)> = Variant::ALL
        .iter()
        .map(|variant| (variant.name(), Vec::new()))
        .collect();
    for scenario in Scenario::ALL {
        let truth = cohort::ground_truth(scenario, start, args.days);
        let options = Options::new(truth.as_of);
        for (variant_index, variant) in Variant::ALL.iter().enumerate() {
            let recoveries: Vec<Recovery> = seeds
                .clone()
                .flat_map(|seed| (0..args.patients).map(move |patient| (seed, patient)))
                .collect::<Vec<_>>()
                .into_par_iter()
                .map(|(seed, patient)| {
                    // The same diaries as a run with `--seed` set to this cohort's seed.
                    let seed = seed.wrapping_mul(1_000_003).wrapping_add(patient);
                    let entries =
                        cohort::generate_variant(scenario, *variant, seed, start, args.days);
                    cohort::check(&analyse(&entries, &options), &truth)
                })
                .collect();
            println!(
                "{:<26} {:<20} {:>6.1}% | {:>6.1}% {:>6.1}% {:>6.1}% {:>6.1}% {:>6.1}% {:>6.1}%",
                scenario.name(),
                variant.name(),
                percent(&recoveries, Recovery::all),
                percent(&recoveries, |r| r.pattern),
                percent(&recoveries, |r| r.first_step_trend),
                percent(&recoveries, |r| r.treatment),
                percent(&recoveries, |r| r.shift),
                percent(&recoveries, |r| r.red_flags),
                percent(&recoveries, |r| r.no_false_direction),
            );
            if Scenario::NULLS.contains(&scenario) {
                nulls.push((
                    scenario,
                    variant.name(),
                    100.0 - percent(&recoveries, |r| r.no_false_direction),
                ));
            }
            totals[variant_index].1.extend(recoveries);
        }
    }
    println!();
    for (name, recoveries) in &totals {
        println!(
            "{:<26} {:<20} {:>6.1}%",
            "all scenarios",
            name,
            percent(recoveries, Recovery::all)
        );
    }
    println!(
        "\nFalse direction on null diaries (no trend; any measure read as improving or worsening):"
    );
    for (scenario, variant, rate) in &nulls {
        println!("{:<26} {:<20} {:>6.1}%", scenario.name(), variant, rate);
    }
    ExitCode::SUCCESS
}
