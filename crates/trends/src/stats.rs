//! Statistics used by the trend analysis: the Mann–Kendall trend test, the Theil–Sen slope, the
//! normal distribution, and the rule for a clinically meaningful change in pain.
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
        for later in &values[i + 1..] {
            s += match later.partial_cmp(earlier) {
                Some(std::cmp::Ordering::Greater) => 1,
                Some(std::cmp::Ordering::Less) => -1,
                _ => 0,
            };
        }
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let tie_term: f64 = sorted
        .chunk_by(|a, b| a == b)
        .map(|group| {
            let t = group.len() as f64;
            t * (t - 1.0) * (2.0 * t + 5.0)
        })
        .sum();
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
                slopes.push((values[j] - values[i]) / dt);
            }
        }
    }
    let slope = median(&mut slopes)?;
    let mut residuals: Vec<f64> = times
        .iter()
        .zip(values)
        .map(|(t, v)| v - slope * t)
        .collect();
    let intercept = median(&mut residuals)?;
    Some(TheilSen { slope, intercept })
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn too_short_series_have_no_test() {
        assert!(mann_kendall(&[1.0, 2.0]).is_none());
        assert!(theil_sen(&[1.0], &[1.0]).is_none());
    }
}
