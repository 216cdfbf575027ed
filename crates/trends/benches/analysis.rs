//! Benchmarks: one patient with ten years of daily entries, and a cohort of 10,000 patients
//! with a year each analysed in parallel. Besides criterion's figures, each prints a one-off
//! throughput (entries/s or patients/s) measured before the criterion runs.

use std::hint::black_box;
use std::time::Instant;

use chrono::{Days, NaiveDate};
use criterion::{criterion_main, Criterion, Throughput};
use heeldiary_trends::cohort::{self, Scenario, Variant};
use heeldiary_trends::{analyse, analyse_many, Options};

fn start() -> NaiveDate {
    NaiveDate::from_ymd_opt(2016, 1, 4).unwrap_or_default()
}

fn one_patient_ten_years(c: &mut Criterion) {
    let days = 3_653;
    let entries =
        cohort::generate_variant(Scenario::PatternShift, Variant::NOISY, 1, start(), days);
    let options = Options::new(start() + Days::new(u64::from(days) - 1));
    let began = Instant::now();
    let report = analyse(&entries, &options);
    let elapsed = began.elapsed();
    println!(
        "one patient, {days} days, {} entries: {:.2} ms, {:.0} entries/s ({} shifts found)",
        entries.len(),
        elapsed.as_secs_f64() * 1e3,
        entries.len() as f64 / elapsed.as_secs_f64(),
        report.shifts.len()
    );
    let mut group = c.benchmark_group("one_patient_10_years");
    group.throughput(Throughput::Elements(entries.len() as u64));
    group.bench_function("analyse", |b| {
        b.iter(|| analyse(black_box(&entries), black_box(&options)))
    });
    group.finish();
}

fn cohort_of_ten_thousand(c: &mut Criterion) {
    let patients = 10_000;
    let days = 365;
    let began = Instant::now();
    let diaries = cohort::cohort(patients, 1, start(), days);
    let entries: usize = diaries.iter().map(Vec::len).sum();
    println!(
        "cohort: generated {patients} patients x {days} days ({entries} entries) in {:.2} s",
        began.elapsed().as_secs_f64()
    );
    let options = Options::new(start() + Days::new(u64::from(days) - 1));
    let began = Instant::now();
    let reports = analyse_many(&diaries, &options);
    let elapsed = began.elapsed();
    println!(
        "cohort: analysed {} patients in {:.2} s on {} threads: {:.0} patients/s, {:.0} entries/s",
        reports.len(),
        elapsed.as_secs_f64(),
        rayon::current_num_threads(),
        patients as f64 / elapsed.as_secs_f64(),
        entries as f64 / elapsed.as_secs_f64()
    );
    let mut group = c.benchmark_group("cohort_10000_x_1_year");
    group.sample_size(10);
    group.measurement_time(std::time::Duration::from_secs(12));
    group.throughput(Throughput::Elements(patients as u64));
    group.bench_function("analyse_many", |b| {
        b.iter(|| analyse_many(black_box(&diaries), black_box(&options)))
    });
    group.finish();
}

/// The benchmark group (a module because `criterion_group!` makes an undocumented function).
#[allow(missing_docs)]
mod group {
    use super::{cohort_of_ten_thousand, one_patient_ten_years};
    criterion::criterion_group!(benches, one_patient_ten_years, cohort_of_ten_thousand);
}
criterion_main!(group::benches);
