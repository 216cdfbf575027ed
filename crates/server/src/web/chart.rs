//! The patient page's chart, drawn by plotters as SVG: first-step pain and sitting/bending pain
//! per day (0-10), treatments as shaded bands, nerve-sign days marked along the top, back-filled
//! entries as hollow points. Long ranges add a 7-day moving average. The chart holds no text;
//! the page gives its legend and a text alternative.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use heeldiary_core::Entry;
use plotters::prelude::*;

/// Size of the drawing, in SVG user units (it scales with the page).
const WIDTH: u32 = 900;
const HEIGHT: u32 = 300;

/// Dark blue: first-step pain.
pub const FIRST_STEP: RGBColor = RGBColor(0x1f, 0x4e, 0x9c);
/// Dark orange: sitting/bending pain.
pub const SITTING: RGBColor = RGBColor(0xa3, 0x40, 0x00);
/// Deep red: nerve-sign days.
pub const NERVE: RGBColor = RGBColor(0x9b, 0x11, 0x1e);
const BAND: RGBColor = RGBColor(0xd8, 0xf0, 0xd8);
const GRID: RGBColor = RGBColor(0xcc, 0xcc, 0xcc);

/// One day of the chart: the day's highest rating of each measure, as the trends engine reads a
/// day with several check-ins, whether every entry was back-filled, and the day's signs.
#[derive(Debug, Clone, Default)]
struct Day {
    first_step: Option<u8>,
    sitting: Option<u8>,
    backfilled: bool,
    nerve: bool,
    treated: bool,
}

fn days(entries: &[Entry], from: NaiveDate, to: NaiveDate) -> BTreeMap<NaiveDate, Day> {
    let mut days: BTreeMap<NaiveDate, Day> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.day >= from && e.day <= to) {
        let first = !days.contains_key(&e.day);
        let day = days.entry(e.day).or_default();
        day.first_step = day.first_step.max(e.first_step_pain);
        day.sitting = day.sitting.max(e.sitting_pain);
        day.backfilled = if first {
            e.backfilled
        } else {
            day.backfilled && e.backfilled
        };
        day.nerve |= e.radiating == Some(true)
            || e.weakness == Some(true)
            || e.numbness
                .is_some_and(|n| n != heeldiary_core::Severity::Absent);
        day.treated |= !e.treatments.is_empty();
    }
    days
}

/// The 7-day trailing mean of `value` on each day that has one (days without an entry are
/// skipped, not counted as zero).
fn moving_average(
    days: &BTreeMap<NaiveDate, Day>,
    value: impl Fn(&Day) -> Option<u8>,
) -> Vec<(NaiveDate, f64)> {
    days.keys()
        .filter_map(|&day| {
            let week: Vec<f64> = days
                .range(day - chrono::Days::new(6)..=day)
                .filter_map(|(_, d)| value(d).map(f64::from))
                .collect();
            (!week.is_empty() && value(&days[&day]).is_some())
                .then(|| (day, week.iter().sum::<f64>() / week.len() as f64))
        })
        .collect()
}

/// The SVG of the chart for days `from..=to`.
pub fn pain_chart(
    entries: &[Entry],
    from: NaiveDate,
    to: NaiveDate,
    smoothed: bool,
) -> Result<String, String> {
    let days = days(entries, from, to);
    let span = (to - from).num_days().max(1) as f64 + 1.0;
    let x = |day: NaiveDate| (day - from).num_days() as f64 + 0.5;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .build_cartesian_2d(0f64..span, -0.5f64..11.0)
            .map_err(|e| e.to_string())?;
        let draw = |e: plotters::drawing::DrawingAreaErrorKind<_>| e.to_string();
        // Treatment bands first, under everything.
        chart
            .draw_series(days.iter().filter(|(_, d)| d.treated).map(|(&day, _)| {
                Rectangle::new([(x(day) - 0.5, -0.5), (x(day) + 0.5, 10.4)], BAND.filled())
            }))
            .map_err(draw)?;
        for y in [0.0, 5.0, 10.0] {
            chart
                .draw_series(LineSeries::new([(0.0, y), (span, y)], GRID.stroke_width(1)))
                .map_err(draw)?;
        }
        let radius = if span > 120.0 { 2 } else { 4 };
        for (color, value) in [
            (
                FIRST_STEP,
                (|d: &Day| d.first_step) as fn(&Day) -> Option<u8>,
            ),
            (SITTING, |d: &Day| d.sitting),
        ] {
            let points: Vec<(f64, f64, bool)> = days
                .iter()
                .filter_map(|(&day, d)| value(d).map(|v| (x(day), f64::from(v), d.backfilled)))
                .collect();
            if smoothed {
                let average = moving_average(&days, value);
                chart
                    .draw_series(LineSeries::new(
                        average.into_iter().map(|(day, v)| (x(day), v)),
                        color.stroke_width(3),
                    ))
                    .map_err(draw)?;
            } else {
                chart
                    .draw_series(LineSeries::new(
                        points.iter().map(|&(x, y, _)| (x, y)),
                        color.stroke_width(2),
                    ))
                    .map_err(draw)?;
            }
            // Contemporaneous entries filled, back-filled ones hollow.
            chart
                .draw_series(points.iter().map(|&(x, y, backfilled)| {
                    let style = if backfilled {
                        color.stroke_width(2)
                    } else {
                        color.filled()
                    };
                    Circle::new((x, y), radius, style)
                }))
                .map_err(draw)?;
        }
        chart
            .draw_series(
                days.iter().filter(|(_, d)| d.nerve).map(|(&day, _)| {
                    TriangleMarker::new((x(day), 10.7), radius + 2, NERVE.filled())
                }),
            )
            .map_err(draw)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// The text alternative of the chart: what it shows, in numbers.
pub fn describe(entries: &[Entry], from: NaiveDate, to: NaiveDate) -> String {
    let days = days(entries, from, to);
    let mean = |value: fn(&Day) -> Option<u8>| {
        let values: Vec<f64> = days.values().filter_map(value).map(f64::from).collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    };
    let show = |m: Option<f64>| m.map_or("no ratings".into(), |m| format!("mean {m:.1} of 10"));
    format!(
        "Pain from {from} to {to}: {} days logged; first-step pain {}; sitting/bending pain {}; \
         {} days with nerve signs; {} days with a treatment; {} back-filled days.",
        days.len(),
        show(mean(|d| d.first_step)),
        show(mean(|d| d.sitting)),
        days.values().filter(|d| d.nerve).count(),
        days.values().filter(|d| d.treated).count(),
        days.values().filter(|d| d.backfilled).count(),
    )
}
