//! Statistics used by the trend analysis: the Mann–Kendall trend test (with the Hamed–Rao
//! correction for serial correlation, the correlation estimated in blocks), the Theil–Sen slope, the Mann–Whitney rank test with the
//! Hodges–Lehmann shift for steps, Holm's adjustment for a family of tests, the normal
//! distribution, and the rule for a clinically meaningful change in pain.
//!
//! Written out here rather than taken from a crate because the formulas are short, well known,
//! and checked by known-answer tests against published reference implementations.

/// Smallest change on the 0–10 scale that is clinically meaningful whatever the baseline
/// (Farrar et al. 2001: about two points).
pub const MEANINGFUL_POINTS: f64 = 2.0;

/// Smallest relative change that is clinically meaningful (Farrar et al. 2001: about 30%).
pub const MEANINGFUL_SHARE: f64 = 0.30;

/// Smallest change that can be told from day-to-day noise: the minimal detectable change of a
/// 0–10 pain rating, 1.77 points (back pain in-patients, doi 10.1055/a-1304-3677). A 30% change
/// of a low baseline (1 point of 3) is below it and does not count; for first-step pain the
/// minimal important difference is about two points anyway (Landorf et al. 2010).
pub const NOISE_POINTS: f64 = 1.77;

/// Tolerance for comparing computed changes with the thresholds above, so that a change of
/// exactly 2 computed as 1.9999999 still counts.
const EPSILON: f64 = 1e-9;

/// Whether a change in a 0–10 pain rating is clinically meaningful: at least two points, or at
/// least 30% of the baseline when that is also above the minimal detectable change.
pub fn is_meaningful_pain_change(change: f64, baseline: f64) -> bool {
    let size = change.abs();
    size + EPSILON >= MEANINGFUL_POINTS
        || (size > NOISE_POINTS + EPSILON
            && baseline > 0.0
            && size + EPSILON >= MEANINGFUL_SHARE * baseline)
}

/// Complementary error function, Numerical Recipes `erfcc` (Chebyshev fit): fractional error
/// below 1.2e-7 everywhere, ample for p-values reported to three decimals.
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let value = t * poly.exp();
    if x >= 0.0 {
        value
    } else {
        2.0 - value
    }
}

/// Cumulative distribution function of the standard normal distribution.
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// Result of the Mann–Kendall trend test on a series in time order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannKendall {
    /// Number of values.
    pub n: usize,
    /// S statistic: concordant minus discordant pairs.
    pub s: i64,
    /// Variance of S under no trend, corrected for ties.
    pub var_s: f64,
    /// Continuity-corrected normal score of S.
    pub z: f64,
    /// Two-sided p-value from the normal approximation.
    pub p: f64,
    /// Kendall's tau: S divided by the number of pairs, n(n−1)/2.
    pub tau: f64,
}

/// Mann–Kendall test of `values`, which must be in time order (gaps between days do not matter:
/// the test only uses the order). `None` for fewer than three values, where no trend can show.
///
/// S = Σ_{i<j} sign(x_j − x_i); Var(S) = [n(n−1)(2n+5) − Σ t(t−1)(2t+5)] / 18 over groups of t
/// tied values; Z = (S − sign(S)) / √Var(S); p = 2(1 − Φ(|Z|)). Same definitions as
/// Hirsch et al. (1982) and the `original_test` of pymannkendall.
pub fn mann_kendall(values: &[f64]) -> Option<MannKendall> {
    let n = values.len();
    if n < 3 {
        return None;
    }
    let mut s: i64 = 0;
    for (i, earlier) in values.iter().enumerate() {
        // Branch-free so the pair loop vectorises; unordered pairs count 0 as before.
        for later in &values[i + 1..] {
            s += i64::from(later > earlier) - i64::from(later < earlier);
        }
    }
    let tie_term = tie_sum(values, |t| t * (t - 1.0) * (2.0 * t + 5.0));
    let nf = n as f64;
    let var_s = (nf * (nf - 1.0) * (2.0 * nf + 5.0) - tie_term) / 18.0;
    let z = if var_s <= 0.0 || s == 0 {
        0.0
    } else {
        (s as f64 - (s.signum() as f64)) / var_s.sqrt()
    };
    // Z = 0 is exactly p = 1; the approximation would give 1 ± 1e-7.
    let p = if z == 0.0 {
        1.0
    } else {
        (2.0 * (1.0 - normal_cdf(z.abs()))).clamp(0.0, 1.0)
    };
    let tau = s as f64 / (nf * (nf - 1.0) / 2.0);
    Some(MannKendall {
        n,
        s,
        var_s,
        z,
        p,
        tau,
    })
}

/// Lag-1 autocorrelation of `values` about their mean, bias-corrected for a short AR(1)
/// series (Marriott–Pope: the plain estimate falls short by about (1 + 3ρ)/n), clamped to
/// 0..=0.95 because only positive correlation widens a test's variance and values near 1
/// make the correction explode. `None` for fewer than four values or a constant series.
pub fn lag1_autocorrelation(values: &[f64]) -> Option<f64> {
    let n = values.len();
    if n < 4 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let denominator: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
    if denominator <= 1e-12 {
        return None;
    }
    let numerator: f64 = values
        .windows(2)
        .map(|pair| (pair[0] - mean) * (pair[1] - mean))
        .sum();
    let raw = numerator / denominator;
    let nf = n as f64;
    Some(((nf * raw + 1.0) / (nf - 3.0)).clamp(0.0, 0.95))
}

/// Ranks 1..=n of `values`, ties given their mean rank.
pub fn ranks(values: &[f64]) -> Vec<f64> {
    let Some(counts) = WholeCounts::of(values) else {
        return ranks_by_sorting(values);
    };
    let mut rank_of = [0.0; WholeCounts::SIZE];
    counts.groups(|value, at, end| rank_of[value] = (at + end) as f64 / 2.0 + 1.0);
    values.iter().map(|v| rank_of[*v as usize]).collect()
}

/// [`ranks`] of any values.
fn ranks_by_sorting(values: &[f64]) -> Vec<f64> {
    // Sorting (key, position) pairs gives the order of a stable sort by `total_cmp` without
    // reading the values through their positions at every comparison.
    let mut order: Vec<(i64, usize)> = values
        .iter()
        .enumerate()
        .map(|(index, value)| (total_order_key(*value), index))
        .collect();
    order.sort_unstable();
    let mut ranks = vec![0.0; values.len()];
    let mut at = 0;
    while at < order.len() {
        let mut end = at;
        while end + 1 < order.len() && values[order[end + 1].1] == values[order[at].1] {
            end += 1;
        }
        let rank = (at + end) as f64 / 2.0 + 1.0;
        for (_, index) in &order[at..=end] {
            ranks[*index] = rank;
        }
        at = end + 1;
    }
    ranks
}

/// An integer that orders as `f64::total_cmp` orders `value`: the sign bit set flips the
/// other bits, so that negative values count down.
fn total_order_key(value: f64) -> i64 {
    let bits = value.to_bits() as i64;
    bits ^ ((((bits >> 63) as u64) >> 1) as i64)
}

/// The value whose [`total_order_key`] is `key` (the flip leaves the sign bit, so it undoes
/// itself).
fn value_of_key(key: i64) -> f64 {
    f64::from_bits((key ^ ((((key >> 63) as u64) >> 1) as i64)) as u64)
}

/// Lag-1 autocorrelation of a series estimated within blocks: the series is ranked (so that an
/// odd day's random rating weighs no more than any other day), cut into consecutive blocks of
/// `block` values counted back from the end, each block is detrended by its least-squares
/// line, and the lag-1 products are pooled over the blocks. When `recent` is given, the last
/// block is also allowed a step before its last `recent` values, so that the step a step test
/// looks for is not mistaken for correlation. Clamped to 0..=0.95.
///
/// Why blocks: a trend or a step leaks into a correlation estimated over a long stretch and
/// makes real changes look like wander, while one short window alone underestimates a strong
/// correlation badly (a 28-day wander at ρ = 0.8 is half absorbed by its own line). Blocks of
/// a few weeks, over the months before, keep each block's fit local and pool enough days for
/// a steady estimate. Fitting a block of m values biases the pooled estimate down; a Monte
/// Carlo of AR(1) blocks of 20 to 42 values puts the shortfall at about
/// (2 + 4.5ρ + 2.5ρ²)/m for a line (2.0, 3.5, 5.3 and 7.1 over m at ρ = 0, 0.3, 0.6 and 0.8)
/// and (3 + 6.5ρ + 2.5ρ²)/m for a line and a step (2.9, 5.0, 7.4 and 9.9 over m). The
/// estimate is corrected by solving r = ρ − Σ shortfall for ρ. `None` when no block has at
/// least four values, or none varies.
pub fn lag1_in_blocks(series: &[f64], block: usize, recent: Option<usize>) -> Option<f64> {
    const MIN_BLOCK: usize = 4;
    let ranked = ranks(series);
    let (mut numerator, mut denominator, mut values) = (0.0, 0.0, 0usize);
    // Blocks fitted by a line alone, and by a line and a step.
    let (mut lines, mut steps) = (0usize, 0usize);
    let mut fit = LeastSquares::default();
    for (index, chunk) in ranked.rchunks(block.max(MIN_BLOCK)).enumerate() {
        if chunk.len() < MIN_BLOCK {
            continue;
        }
        let step_at = recent
            .filter(|recent| index == 0 && *recent > 1 && *recent + 1 < chunk.len())
            .map(|recent| chunk.len() - recent);
        let residuals = fit.residuals(chunk, step_at);
        denominator += residuals.iter().map(|r| r * r).sum::<f64>();
        numerator += residuals
            .windows(2)
            .map(|pair| pair[0] * pair[1])
            .sum::<f64>();
        values += chunk.len();
        if step_at.is_some() {
            steps += 1;
        } else {
            lines += 1;
        }
    }
    if values == 0 || denominator <= 1e-12 {
        return None;
    }
    let raw = numerator / denominator;
    let (lines, steps, values) = (lines as f64, steps as f64, values as f64);
    let shortfall = |rho: f64| {
        (lines * (2.0 + 4.5 * rho + 2.5 * rho * rho) + steps * (3.0 + 6.5 * rho + 2.5 * rho * rho))
            / values
    };
    // Fixed-point iteration: the shortfall grows slowly with ρ, so this settles in a few steps.
    let mut rho = raw.clamp(0.0, 0.95);
    for _ in 0..100 {
        let next = (raw + shortfall(rho)).clamp(0.0, 0.95);
        let settled = (next - rho).abs() < 1e-9;
        rho = next;
        if settled {
            break;
        }
    }
    Some(rho)
}

/// Buffers for least-squares residuals, kept from one block to the next so that a series cut
/// into blocks allocates them once.
#[derive(Default)]
struct LeastSquares {
    /// Orthonormal basis of the regressors, one unit vector after another.
    basis: Vec<f64>,
    regressor: Vec<f64>,
    residuals: Vec<f64>,
}

#[derive(Clone, Copy)]
enum Regressor {
    Constant,
    Position,
    StepFrom(usize),
}

impl LeastSquares {
    /// Residuals of `values` from their least-squares fit on a constant, the position and,
    /// when `step_at` is given, a step from that position on (Gram–Schmidt on the regressors).
    fn residuals(&mut self, values: &[f64], step_at: Option<usize>) -> &[f64] {
        let n = values.len();
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let Self {
            basis,
            regressor,
            residuals,
        } = self;
        basis.clear();
        let steps = step_at.map(Regressor::StepFrom);
        for shape in [Some(Regressor::Constant), Some(Regressor::Position), steps]
            .into_iter()
            .flatten()
        {
            regressor.clear();
            regressor.extend((0..n).map(|t| match shape {
                Regressor::Constant => 1.0,
                Regressor::Position => t as f64,
                Regressor::StepFrom(at) => {
                    if t >= at {
                        1.0
                    } else {
                        0.0
                    }
                }
            }));
            for unit in basis.chunks_exact(n.max(1)) {
                let along = dot(regressor, unit);
                regressor
                    .iter_mut()
                    .zip(unit)
                    .for_each(|(r, u)| *r -= along * u);
            }
            let norm = dot(regressor, regressor).sqrt();
            if norm > 1e-9 {
                basis.extend(regressor.iter().map(|r| r / norm));
            }
        }
        residuals.clear();
        residuals.extend_from_slice(values);
        for unit in basis.chunks_exact(n.max(1)) {
            let along = dot(residuals, unit);
            residuals
                .iter_mut()
                .zip(unit)
                .for_each(|(r, u)| *r -= along * u);
        }
        residuals
    }
}

/// The Mann–Kendall test with the Hamed–Rao (1998) variance correction for serially
/// correlated data, the correlation estimated from `values` themselves in one block (see
/// [`lag1_in_blocks`]); [`mann_kendall_hamed_rao_given`] takes a correlation estimated from a
/// longer stretch, which is better. Returns the corrected test and the variance factor.
pub fn mann_kendall_hamed_rao(values: &[f64]) -> Option<(MannKendall, f64)> {
    let rho = lag1_in_blocks(values, values.len(), None).unwrap_or(0.0);
    mann_kendall_hamed_rao_given(values, rho)
}

/// The Mann–Kendall test of `values` with the Hamed–Rao variance correction for a lag-1
/// correlation `rho` taken as an AR(1) model (ρ_k = ρ^k):
/// n/n* = 1 + 2/(n(n−1)(n−2)) Σ_k (n−k)(n−k−1)(n−k−2) ρ_k; Var(S) is multiplied by it and
/// Z and p recomputed. The factor is never below 1: negative correlation does not make the
/// test bolder. Returns the corrected test and the factor.
pub fn mann_kendall_hamed_rao_given(values: &[f64], rho: f64) -> Option<(MannKendall, f64)> {
    let plain = mann_kendall(values)?;
    let n = values.len();
    let nf = n as f64;
    let rho = rho.clamp(0.0, 0.95);
    // Without correlation every term is zero and the factor is exactly 1.
    let sum: f64 = if rho == 0.0 {
        0.0
    } else {
        (1..n)
            .map(|k| {
                let kf = k as f64;
                (nf - kf) * (nf - kf - 1.0) * (nf - kf - 2.0) * rho.powi(k as i32)
            })
            .sum()
    };
    let ratio = (1.0 + 2.0 * sum / (nf * (nf - 1.0) * (nf - 2.0))).max(1.0);
    let var_s = plain.var_s * ratio;
    let z = if var_s <= 0.0 || plain.s == 0 {
        0.0
    } else {
        (plain.s as f64 - plain.s.signum() as f64) / var_s.sqrt()
    };
    let p = two_sided_p(z);
    Some((
        MannKendall {
            var_s,
            z,
            p,
            ..plain
        },
        ratio,
    ))
}

fn two_sided_p(z: f64) -> f64 {
    if z == 0.0 {
        1.0
    } else {
        (2.0 * (1.0 - normal_cdf(z.abs()))).clamp(0.0, 1.0)
    }
}

/// A shift between two stretches of a series: the Mann–Whitney rank test and the
/// Hodges–Lehmann estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankShift {
    /// Hodges–Lehmann shift: the median of every `later − earlier` difference.
    pub shift: f64,
    /// Continuity-corrected normal score of U, after widening for serial correlation.
    pub z: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// Factor the variance of U was widened by, (1 + ρ)/(1 − ρ) for the pooled lag-1
    /// autocorrelation ρ within the two stretches (1 when there is none).
    pub variance_ratio: f64,
}

/// Mann–Whitney test of `later` against `earlier` (each in time order), with the tie-corrected
/// variance of U widened by (1 + ρ)/(1 − ρ) for the lag-1 autocorrelation ρ within the
/// stretches, the usual large-sample correction for AR(1) data; and the Hodges–Lehmann shift.
/// `None` when either side is empty or every value is tied.
pub fn rank_shift(earlier: &[f64], later: &[f64]) -> Option<RankShift> {
    rank_shift_given(earlier, later, None)
}

/// [`rank_shift`] with the lag-1 correlation `rho` given (estimated from a longer stretch, see
/// [`lag1_in_blocks`]) instead of pooled within the two stretches; clamped to 0..=0.9.
pub fn rank_shift_given(earlier: &[f64], later: &[f64], rho: Option<f64>) -> Option<RankShift> {
    let (n1, n2) = (later.len() as f64, earlier.len() as f64);
    if later.is_empty() || earlier.is_empty() {
        return None;
    }
    let (mut greater, mut equal) = (0usize, 0usize);
    for l in later {
        // Counted as integers: U is a multiple of 0.5 far below 2^52, so it is the same exact
        // value as summing 1 and 0.5 pair by pair.
        for e in earlier {
            greater += usize::from(l > e);
            equal += usize::from(l == e);
        }
    }
    let u = greater as f64 + 0.5 * equal as f64;
    let shift = hodges_lehmann(earlier, later)?;
    let all: Vec<f64> = earlier.iter().chain(later).copied().collect();
    let total = n1 + n2;
    let ties = tie_sum(&all, |t| t * t * t - t);
    let var_u = n1 * n2 / 12.0 * ((total + 1.0) - ties / (total * (total - 1.0)));
    if var_u <= 1e-12 {
        return None;
    }
    // Within a stretch there is no trend to confound the estimate, so the plain pooled
    // estimate serves; differences of mostly tied whole numbers would overstate it.
    let rho = rho.map_or_else(|| pooled_lag1(&[earlier, later]), |rho| rho.clamp(0.0, 0.9));
    let variance_ratio = (1.0 + rho) / (1.0 - rho);
    let centred = u - n1 * n2 / 2.0;
    let corrected = centred - 0.5 * centred.signum();
    let z = if centred == 0.0 {
        0.0
    } else {
        corrected / (var_u * variance_ratio).sqrt()
    };
    Some(RankShift {
        shift,
        z,
        p: two_sided_p(z),
        variance_ratio,
    })
}

/// The Hodges–Lehmann shift of `later` against `earlier`: the median of every `later − earlier`
/// difference. `None` when either is empty.
fn hodges_lehmann(earlier: &[f64], later: &[f64]) -> Option<f64> {
    if WholeCounts::takes(earlier) && WholeCounts::takes(later) {
        // Differences of whole numbers 0 to 31 are the whole numbers −31 to 31, exactly.
        // Counted in `usize`: the pairs are n1 × n2, beyond a `u32` for long stretches.
        let mut counts = [0usize; 2 * WholeCounts::SIZE - 1];
        let lowest = WholeCounts::SIZE as isize - 1;
        for l in later {
            for e in earlier {
                counts[((l - e) as isize + lowest) as usize] += 1;
            }
        }
        let value = |at: usize| (at as isize - lowest) as f64;
        let odd = later.len() * earlier.len() % 2 == 1;
        return median_of_counts(&counts).map(|(lower, upper)| {
            if odd {
                value(upper)
            } else {
                (value(lower) + value(upper)) / 2.0
            }
        });
    }
    hodges_lehmann_by_sorting(earlier, later)
}

/// [`hodges_lehmann`] of any values.
fn hodges_lehmann_by_sorting(earlier: &[f64], later: &[f64]) -> Option<f64> {
    let mut differences = Vec::with_capacity(later.len() * earlier.len());
    for l in later {
        differences.extend(earlier.iter().map(|e| total_order_key(l - e)));
    }
    median_of_keys(&mut differences)
}

/// Σ `term(t)` over the groups of `t` equal values of `values`, in increasing order of value:
/// the tie corrections of the rank tests.
fn tie_sum(values: &[f64], term: impl Fn(f64) -> f64) -> f64 {
    match WholeCounts::of(values) {
        Some(counts) => counts
            .0
            .iter()
            .filter(|count| **count > 0)
            .map(|count| term(*count as f64))
            .sum(),
        None => tie_sum_by_sorting(values, term),
    }
}

/// [`tie_sum`] of any values.
fn tie_sum_by_sorting(values: &[f64], term: impl Fn(f64) -> f64) -> f64 {
    let mut sorted = values.to_vec();
    // Values equal under `total_cmp` have the same bits, so an unstable sort gives the same
    // slice without the stable sort's scratch buffer.
    sorted.sort_unstable_by(f64::total_cmp);
    sorted
        .chunk_by(|a, b| a == b)
        .map(|group| term(group.len() as f64))
        .sum()
}

/// How often each whole number from 0 to 31 occurs in a series, when every value is one. The
/// series the trends test are such: 0–10 pain scores and counts of nerve signs (0–5). Their
/// ranks, ties and the median of their differences come from the counts in one pass where
/// sorting takes many, and are the same numbers, bit for bit: the property tests below compare
/// each with its sorting form.
struct WholeCounts([usize; WholeCounts::SIZE]);

impl WholeCounts {
    const SIZE: usize = 32;

    fn of(values: &[f64]) -> Option<WholeCounts> {
        let mut counts = [0; Self::SIZE];
        for value in values {
            counts[Self::whole(*value)?] += 1;
        }
        Some(WholeCounts(counts))
    }

    /// Whether every value of `values` is one the counts take.
    fn takes(values: &[f64]) -> bool {
        values.iter().all(|value| Self::whole(*value).is_some())
    }

    /// The whole number `value` is, from 0 to 31. The cast saturates (a negative value or NaN
    /// gives 0), and only a value that comes back bit for bit is taken: not −0.0, a fraction or
    /// anything out of range.
    fn whole(value: f64) -> Option<usize> {
        let whole = value as usize;
        (whole < Self::SIZE && (whole as f64).to_bits() == value.to_bits()).then_some(whole)
    }

    /// Calls `group(value, at, end)` for each value present, in increasing order, with the
    /// first and last positions (from 0) its group takes in the sorted series.
    fn groups(&self, mut group: impl FnMut(usize, usize, usize)) {
        let mut at = 0;
        for (value, count) in self.0.iter().enumerate() {
            if *count > 0 {
                let end = at + *count - 1;
                group(value, at, end);
                at = end + 1;
            }
        }
    }
}

/// The positions in `counts` (how often each position's value occurs, values in increasing
/// order) of the two middle values of the sorted series, the same one twice for an odd count.
/// `None` when empty.
fn median_of_counts(counts: &[usize]) -> Option<(usize, usize)> {
    let n: usize = counts.iter().sum();
    if n == 0 {
        return None;
    }
    // The position holding the `k`-th value of the sorted series (from 0).
    let nth = |k: usize| {
        let mut seen = 0;
        counts.iter().position(|count| {
            seen += *count;
            seen > k
        })
    };
    let upper = nth(n / 2)?;
    let lower = if n % 2 == 1 { upper } else { nth(n / 2 - 1)? };
    Some((lower, upper))
}

/// Lag-1 autocorrelation pooled over stretches, each about its own mean, bias-corrected and
/// clamped as in [`lag1_autocorrelation`]; 0 when no stretch varies.
fn pooled_lag1(stretches: &[&[f64]]) -> f64 {
    let (mut numerator, mut denominator, mut count) = (0.0, 0.0, 0usize);
    for stretch in stretches {
        if stretch.len() < 2 {
            continue;
        }
        let mean = stretch.iter().sum::<f64>() / stretch.len() as f64;
        denominator += stretch.iter().map(|v| (v - mean).powi(2)).sum::<f64>();
        numerator += stretch
            .windows(2)
            .map(|pair| (pair[0] - mean) * (pair[1] - mean))
            .sum::<f64>();
        count += stretch.len();
    }
    if denominator <= 1e-12 || count < 4 {
        return 0.0;
    }
    let n = count as f64;
    ((n * numerator / denominator + 1.0) / (n - 3.0)).clamp(0.0, 0.9)
}

/// Holm's step-down adjustment of a family of p-values (`None`s are not in the family and
/// stay `None`): the k-th smallest of m is multiplied by m − k + 1, and the adjusted values
/// are made non-decreasing. Controls the chance of any false finding in the family.
pub fn holm(p_values: &[Option<f64>]) -> Vec<Option<f64>> {
    let mut order: Vec<(usize, f64)> = p_values
        .iter()
        .enumerate()
        .filter_map(|(index, p)| p.map(|p| (index, p)))
        .collect();
    order.sort_by(|a, b| a.1.total_cmp(&b.1));
    let m = order.len();
    let mut adjusted = vec![None; p_values.len()];
    let mut running: f64 = 0.0;
    for (rank, (index, p)) in order.into_iter().enumerate() {
        running = running.max(((m - rank) as f64 * p).min(1.0));
        adjusted[index] = Some(running);
    }
    adjusted
}

/// Median of `values` (mean of the two middle values for an even count); `None` when empty.
/// Reorders `values`.
pub fn median(values: &mut [f64]) -> Option<f64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mid = n / 2;
    let (below, upper_middle, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    let upper_middle = *upper_middle;
    if n % 2 == 1 {
        Some(upper_middle)
    } else {
        let lower_middle = below.iter().copied().max_by(f64::total_cmp)?;
        Some((lower_middle + upper_middle) / 2.0)
    }
}

/// [`median`] of the values whose [`total_order_key`]s are `keys`: integers select faster
/// than floats compared by `total_cmp`, and the key gives back the value's exact bits.
fn median_of_keys(keys: &mut [i64]) -> Option<f64> {
    let n = keys.len();
    if n == 0 {
        return None;
    }
    let mid = n / 2;
    let (below, upper_middle, _) = keys.select_nth_unstable(mid);
    let upper_middle = value_of_key(*upper_middle);
    if n % 2 == 1 {
        Some(upper_middle)
    } else {
        let lower_middle = value_of_key(*below.iter().max()?);
        Some((lower_middle + upper_middle) / 2.0)
    }
}

/// A straight line fitted by the Theil–Sen estimator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TheilSen {
    /// Median of the pairwise slopes, in value units per time unit.
    pub slope: f64,
    /// Median of `value − slope × time`, so that the line passes through the middle of the data.
    pub intercept: f64,
}

impl TheilSen {
    /// Value of the fitted line at `time`.
    pub fn at(&self, time: f64) -> f64 {
        self.intercept + self.slope * time
    }
}

/// Theil–Sen line through the points (`times[i]`, `values[i]`): slope = median of
/// (v_j − v_i)/(t_j − t_i) over pairs with different times (Sen 1968), intercept = median of
/// v − slope·t (as `scipy.stats.theilslopes`). Using real times (day numbers) rather than
/// positions keeps the slope right when days are missing. `None` with fewer than two distinct
/// times or mismatched lengths.
pub fn theil_sen(times: &[f64], values: &[f64]) -> Option<TheilSen> {
    if times.len() != values.len() {
        return None;
    }
    let mut slopes = Vec::with_capacity(times.len() * times.len().saturating_sub(1) / 2);
    for i in 0..times.len() {
        for j in i + 1..times.len() {
            let dt = times[j] - times[i];
            if dt != 0.0 {
                slopes.push(total_order_key((values[j] - values[i]) / dt));
            }
        }
    }
    let slope = median_of_keys(&mut slopes)?;
    // The slopes are spent: their buffer holds the residuals.
    let mut residuals = slopes;
    residuals.clear();
    residuals.extend(
        times
            .iter()
            .zip(values)
            .map(|(t, v)| total_order_key(v - slope * t)),
    );
    let intercept = median_of_keys(&mut residuals)?;
    Some(TheilSen { slope, intercept })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn meaningful_change_needs_two_points_or_thirty_percent_above_noise() {
        assert!(is_meaningful_pain_change(-2.0, 8.0));
        assert!(is_meaningful_pain_change(2.0, 1.0));
        assert!(!is_meaningful_pain_change(-1.9, 8.0));
        // 1.9 points is 30% of a baseline of 6.2 and above the minimal detectable change.
        assert!(is_meaningful_pain_change(-1.9, 6.2));
        // 1.5 points is 37% of a baseline of 4 but within the noise.
        assert!(!is_meaningful_pain_change(-1.5, 4.0));
        // 1 point is 33% of 3 but is noise.
        assert!(!is_meaningful_pain_change(-1.0, 3.0));
        assert!(!is_meaningful_pain_change(0.0, 0.0));
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }

    #[test]
    fn the_median_of_keys_is_the_median() {
        let values = [3.5, -0.0, 0.0, -2.25, 9.0, 1e-300, -7.0, 3.5];
        for count in 1..=values.len() {
            let mut plain = values[..count].to_vec();
            let mut keys: Vec<i64> = plain.iter().map(|v| total_order_key(*v)).collect();
            assert_eq!(
                median_of_keys(&mut keys).map(f64::to_bits),
                median(&mut plain).map(f64::to_bits),
                "{count}"
            );
        }
    }

    #[test]
    fn holm_multiplies_by_the_remaining_family_and_stays_ordered() {
        let adjusted = holm(&[Some(0.01), None, Some(0.04), Some(0.03), Some(0.5)]);
        assert_eq!(adjusted[1], None);
        assert!((adjusted[0].unwrap() - 0.04).abs() < 1e-12);
        assert!((adjusted[3].unwrap() - 0.09).abs() < 1e-12);
        // 2 × 0.04 = 0.08 is below the 0.09 before it: held at 0.09.
        assert!((adjusted[2].unwrap() - 0.09).abs() < 1e-12);
        assert!((adjusted[4].unwrap() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn the_total_order_key_orders_as_total_cmp() {
        let values = [
            f64::NEG_INFINITY,
            -3.5,
            -f64::MIN_POSITIVE,
            -0.0,
            0.0,
            f64::MIN_POSITIVE,
            1.0,
            7.25,
            f64::INFINITY,
            f64::NAN,
            -f64::NAN,
        ];
        for a in values {
            assert_eq!(value_of_key(total_order_key(a)).to_bits(), a.to_bits());
            for b in values {
                assert_eq!(
                    total_order_key(a).cmp(&total_order_key(b)),
                    a.total_cmp(&b),
                    "{a} against {b}"
                );
            }
        }
    }

    #[test]
    fn ranks_share_ties() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
        assert_eq!(ranks(&[3.5, 1.0, 3.5, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn only_whole_numbers_from_0_to_31_are_counted() {
        assert!(WholeCounts::of(&[0.0, 31.0, 7.0]).is_some());
        assert!(WholeCounts::of(&[]).is_some());
        for odd in [-0.0, -1.0, 0.5, 32.0, 1e300, f64::NAN, f64::INFINITY] {
            assert!(WholeCounts::of(&[3.0, odd]).is_none(), "{odd}");
        }
    }

    /// Series of whole numbers from 0 to 31 (the ends drawn often), or with an odd value
    /// among them.
    fn series() -> impl Strategy<Value = Vec<f64>> {
        let whole = prop_oneof![
            6 => (0u8..12).prop_map(f64::from),
            2 => (0u8..32).prop_map(f64::from),
            1 => Just(0.0),
            1 => Just(31.0),
        ];
        let odd = prop_oneof![
            Just(-0.0),
            Just(2.5),
            Just(-1.0),
            Just(32.0),
            Just(f64::NAN)
        ];
        prop_oneof![
            3 => prop::collection::vec(whole.clone(), 0..60),
            1 => (prop::collection::vec(whole, 0..60), odd, any::<prop::sample::Index>()).prop_map(
                |(mut values, odd, at)| {
                    values.insert(at.index(values.len() + 1), odd);
                    values
                },
            ),
        ]
    }

    proptest! {
        /// Ranks, tie sums and Hodges–Lehmann shifts read from counts are the sorted ones,
        /// bit for bit.
        #[test]
        fn counting_gives_what_sorting_gives(earlier in series(), later in series()) {
            let bits = |values: Vec<f64>| values.into_iter().map(f64::to_bits).collect::<Vec<_>>();
            prop_assert_eq!(bits(ranks(&later)), bits(ranks_by_sorting(&later)));
            let term = |t: f64| t * (t - 1.0) * (2.0 * t + 5.0);
            prop_assert_eq!(
                tie_sum(&later, term).to_bits(),
                tie_sum_by_sorting(&later, term).to_bits()
            );
            prop_assert_eq!(
                hodges_lehmann(&earlier, &later).map(f64::to_bits),
                hodges_lehmann_by_sorting(&earlier, &later).map(f64::to_bits)
            );
        }
    }

    #[test]
    fn a_step_in_whole_numbers_has_a_hodges_lehmann_shift_and_a_clear_rank_test() {
        // Ten days of 5 among the last fourteen, after four weeks of 3.
        let earlier = vec![3.0; 28];
        let later = [5., 5., 3., 5., 5., 5., 3., 5., 5., 3., 5., 5., 3., 5.];
        let step = rank_shift(&earlier, &later).unwrap();
        assert_eq!(step.shift, 2.0);
        assert!(step.p < 0.001, "{step:?}");
        let none = rank_shift(&[3.0, 4.0, 3.0, 4.0], &[4.0, 3.0, 4.0, 3.0]).unwrap();
        assert_eq!(none.shift, 0.0);
        assert!(none.p > 0.5);
    }

    /// Standard normal draws from a fixed linear congruential generator (Box–Muller).
    fn normals(seed: u64, count: usize) -> Vec<f64> {
        let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let mut uniform = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..count)
            .map(|_| {
                let (u, v) = (uniform(), uniform());
                (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
            })
            .collect()
    }

    /// Twelve weeks of whole-number ratings wandering with lag-1 correlation `rho`.
    fn wander(seed: u64, rho: f64) -> Vec<f64> {
        let mut level = 0.0;
        normals(seed, 84)
            .into_iter()
            .map(|draw| {
                level = rho * level + (1.0 - rho * rho).sqrt() * draw;
                (5.0 + 1.5 * level).round().clamp(0.0, 10.0)
            })
            .collect()
    }

    fn mean_estimate(rho: f64, shape: impl Fn(usize) -> f64, recent: Option<usize>) -> f64 {
        let estimates: Vec<f64> = (0..200)
            .map(|seed| {
                let series: Vec<f64> = wander(seed, rho)
                    .iter()
                    .enumerate()
                    .map(|(day, value)| value + shape(day))
                    .collect();
                lag1_in_blocks(&series, 42, recent).unwrap_or(0.0)
            })
            .collect();
        estimates.iter().sum::<f64>() / estimates.len() as f64
    }

    #[test]
    fn correlation_in_blocks_recovers_strong_and_absent_correlation() {
        for rho in [0.0, 0.3, 0.6, 0.8] {
            let estimate = mean_estimate(rho, |_| 0.0, Some(14));
            assert!((estimate - rho).abs() < 0.1, "{rho}: {estimate}");
        }
        // One four-week window, detrended, falls far short at 0.8.
        let short: f64 = (0..200)
            .map(|seed| {
                let series = wander(seed, 0.8);
                let window = &series[56..];
                let positions: Vec<f64> = (0..window.len()).map(|i| i as f64).collect();
                let line = theil_sen(&positions, window).unwrap();
                let detrended: Vec<f64> = window
                    .iter()
                    .zip(&positions)
                    .map(|(v, t)| v - line.at(*t))
                    .collect();
                lag1_autocorrelation(&detrended).unwrap_or(0.0)
            })
            .sum::<f64>()
            / 200.0;
        assert!(short < 0.7, "{short}");
    }

    #[test]
    fn a_trend_or_a_step_is_not_read_as_correlation() {
        // Independent days falling by 4 points over twelve weeks.
        let falling = mean_estimate(0.0, |day| -4.0 * day as f64 / 84.0, Some(14));
        assert!(falling < 0.15, "{falling}");
        // Independent days stepping up 4 points in the last two weeks: the step is fitted.
        let step = |day: usize| if day >= 70 { 4.0 } else { 0.0 };
        let fitted = mean_estimate(0.0, step, Some(14));
        assert!(fitted < 0.15, "{fitted}");
        let unfitted = mean_estimate(0.0, step, None);
        assert!(unfitted > fitted + 0.05, "{unfitted} against {fitted}");
    }

    #[test]
    fn serial_correlation_widens_the_mann_kendall_variance_never_narrows_it() {
        // A slow wave: neighbours alike, no trend over the whole.
        let wave: Vec<f64> = (0..28)
            .map(|i| (5.0 + 2.0 * (i as f64 / 4.0).sin()).round())
            .collect();
        let plain = mann_kendall(&wave).unwrap();
        let (corrected, ratio) = mann_kendall_hamed_rao(&wave).unwrap();
        assert!(ratio > 1.5, "{ratio}");
        assert!(corrected.p > plain.p);
        let alternating: Vec<f64> = (0..20)
            .map(|i| f64::from(i % 2) + i as f64 * 0.01)
            .collect();
        let (_, ratio) = mann_kendall_hamed_rao(&alternating).unwrap();
        assert_eq!(ratio, 1.0);
    }

    #[test]
    fn too_short_series_have_no_test() {
        assert!(mann_kendall(&[1.0, 2.0]).is_none());
        assert!(theil_sen(&[1.0], &[1.0]).is_none());
    }
}
