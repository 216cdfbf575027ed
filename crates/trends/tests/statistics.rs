//! Known-answer tests of the statistics.
//!
//! Reference values come from pymannkendall 1.4.3 (`original_test`, which reports S, Var(S),
//! Z, p, Tau and Sen's slope over positions) and SciPy 1.17.1 (`scipy.stats.theilslopes` with
//! day numbers as x, `scipy.stats.norm.cdf`), and one series is also worked by hand below.

use heeldiary_trends::stats::{
    erfc, is_meaningful_pain_change, mann_kendall, median, normal_cdf, theil_sen,
};

fn close(actual: f64, expected: f64, tolerance: f64) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{actual} is not within {tolerance} of {expected}"
    );
}

fn positions(n: usize) -> Vec<f64> {
    (0..n).map(|i| i as f64).collect()
}

/// Worked by hand: x = 1, 3, 2, 4, 5.
/// Pairs (i<j): 1<3 +, 1<2 +, 1<4 +, 1<5 +, 3>2 −, 3<4 +, 3<5 +, 2<4 +, 2<5 +, 4<5 + → S = 9 − 1 = 8.
/// No ties: Var(S) = n(n−1)(2n+5)/18 = 5·4·15/18 = 16.667.
/// Z = (S − 1)/√Var = 7/4.0825 = 1.7146; p = 2(1 − Φ(1.7146)) = 0.0864; tau = 8/10 = 0.8.
/// Pairwise slopes: 2, 0.5, 1, 1, −1, 0.5, 0.667, 2, 1.5, 1 → sorted median (1 + 1)/2 = 1.
/// pymannkendall gives S 8, var 16.666666666666668, z 1.7146428199482247,
/// p 0.08641073297370006, Tau 0.8, slope 1.0.
#[test]
fn rising_short_series_worked_by_hand() {
    let values = [1.0, 3.0, 2.0, 4.0, 5.0];
    let test = mann_kendall(&values).unwrap();
    assert_eq!(test.n, 5);
    assert_eq!(test.s, 8);
    close(test.var_s, 16.666_666_666_666_668, 1e-9);
    close(test.z, 1.714_642_819_948_224_7, 1e-9);
    close(test.p, 0.086_410_732_973_700_06, 1e-6);
    close(test.tau, 0.8, 1e-12);
    let line = theil_sen(&positions(5), &values).unwrap();
    close(line.slope, 1.0, 1e-12);
}

/// With ties: groups of two 6s, two 5s and two 3s, so
/// Var(S) = (10·9·25 − 3·(2·1·9))/18 = (2250 − 54)/18 = 122.
/// pymannkendall: S −36, var 122.0, z −3.1687511114881484, p 0.0015309543450490182,
/// Tau −0.8, slope −0.6.
#[test]
fn falling_series_with_ties_matches_pymannkendall() {
    let values = [7.0, 8.0, 6.0, 6.0, 5.0, 4.0, 5.0, 3.0, 2.0, 3.0];
    let test = mann_kendall(&values).unwrap();
    assert_eq!(test.s, -36);
    close(test.var_s, 122.0, 1e-9);
    close(test.z, -3.168_751_111_488_148_4, 1e-9);
    close(test.p, 0.001_530_954_345_049_018_2, 1e-6);
    close(test.tau, -0.8, 1e-12);
    let line = theil_sen(&positions(values.len()), &values).unwrap();
    close(line.slope, -0.6, 1e-12);
}

/// pymannkendall: S −2, var 85.33333333333333, z −0.10825317547305484,
/// p 0.9137948648205594, Tau −0.05555555555555555, slope 0.0.
#[test]
fn trendless_series_matches_pymannkendall() {
    let values = [5.0, 3.0, 6.0, 4.0, 5.0, 6.0, 3.0, 5.0, 4.0];
    let test = mann_kendall(&values).unwrap();
    assert_eq!(test.s, -2);
    close(test.var_s, 85.333_333_333_333_33, 1e-9);
    close(test.z, -0.108_253_175_473_054_84, 1e-9);
    close(test.p, 0.913_794_864_820_559_4, 1e-6);
    close(test.tau, -0.055_555_555_555_555_55, 1e-12);
    let line = theil_sen(&positions(values.len()), &values).unwrap();
    close(line.slope, 0.0, 1e-12);
}

/// Missing days: values on days 0, 1, 3, 4, 7, 8, 10, 13. The Mann–Kendall test uses only
/// the order (pymannkendall: S −26, var 63.333333333333336, z −3.141404312187716,
/// p 0.0016813974144125332, Tau −0.9285714285714286). The slope must use the days:
/// scipy.stats.theilslopes(y, days) gives slope −1/3 and intercept 7.333333333333333, while
/// a slope over positions (pymannkendall's −0.6667) would double the rate.
#[test]
fn gapped_days_use_real_time_for_the_slope() {
    let values = [8.0, 7.0, 7.0, 6.0, 5.0, 5.0, 4.0, 3.0];
    let days = [0.0, 1.0, 3.0, 4.0, 7.0, 8.0, 10.0, 13.0];
    let test = mann_kendall(&values).unwrap();
    assert_eq!(test.s, -26);
    close(test.var_s, 63.333_333_333_333_336, 1e-9);
    close(test.z, -3.141_404_312_187_716, 1e-9);
    close(test.p, 0.001_681_397_414_412_533_2, 1e-6);
    close(test.tau, -0.928_571_428_571_428_6, 1e-12);
    let line = theil_sen(&days, &values).unwrap();
    close(line.slope, -1.0 / 3.0, 1e-12);
    close(line.intercept, 7.333_333_333_333_333, 1e-9);
}

/// scipy.stats.norm.cdf reference values; the approximation's stated accuracy is 1.2e-7
/// relative, so 1e-7 absolute is required here.
#[test]
fn normal_cdf_matches_scipy() {
    let reference = [
        (0.0, 0.5),
        (0.5, 0.691_462_461_274_013_1),
        (1.0, 0.841_344_746_068_542_9),
        (1.959_963_984_540_054, 0.975),
        (2.5, 0.993_790_334_674_223_8),
        (3.0, 0.998_650_101_968_369_9),
        (-1.2, 0.115_069_670_221_708_22),
        (5.0, 0.999_999_713_348_428_1),
    ];
    for (z, expected) in reference {
        close(normal_cdf(z), expected, 1e-7);
    }
    close(erfc(0.0), 1.0, 1e-7);
    close(erfc(-3.0) + erfc(3.0), 2.0, 1e-12);
}

#[test]
fn a_constant_series_has_no_trend() {
    let test = mann_kendall(&[4.0; 12]).unwrap();
    assert_eq!(test.s, 0);
    assert_eq!(test.z, 0.0);
    assert_eq!(test.p, 1.0);
}

#[test]
fn meaningful_change_follows_farrar() {
    assert!(is_meaningful_pain_change(-2.0, 7.0));
    assert!(!is_meaningful_pain_change(-1.0, 7.0), "one point is noise");
    assert!(is_meaningful_pain_change(-1.8, 5.5), "33% of the baseline");
    assert!(
        !is_meaningful_pain_change(-1.5, 4.5),
        "33% but within the noise"
    );
    assert_eq!(median(&mut [5.0, 1.0, 9.0, 3.0]), Some(4.0));
}
