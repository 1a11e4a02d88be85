//! Robust statistics, by hand: median, median absolute deviation and the robust z-score.
//!
//! ClickHouse 18.16's `median` and `quantileExact(0.5)` disagree, so the MAD is computed
//! here. The median of an even count is the mean of the two middle values.

/// The median of `values` (reordered in place); `None` when empty.
pub(crate) fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 })
}

/// Median and MAD (median of the absolute deviations from the median) of `values`.
pub(crate) fn median_mad(values: &[f64]) -> Option<(f64, f64)> {
    let mut v = values.to_vec();
    let m = median(&mut v)?;
    let mut dev: Vec<f64> = values.iter().map(|x| (x - m).abs()).collect();
    let mad = median(&mut dev)?;
    Some((m, mad))
}

/// MAD × 1.4826 estimates the standard deviation of normally distributed data.
pub(crate) const MAD_TO_SIGMA: f64 = 1.4826;

/// How many robust standard deviations `x` lies above `median`: `(x − median) / max(1.4826 ×
/// MAD, min_scale)`. The floor keeps a flat history (MAD 0) from making any change infinite.
pub(crate) fn robust_z(x: f64, median: f64, mad: f64, min_scale: f64) -> f64 {
    (x - median) / (MAD_TO_SIGMA * mad).max(min_scale)
}

/// P(X ≥ n) for X ~ Poisson(λ).
pub(crate) fn poisson_at_least(n: u32, lambda: f64) -> f64 {
    if n == 0 {
        return 1.0;
    }
    let lambda = lambda.max(0.0);
    let mut term = (-lambda).exp();
    let mut below = term;
    for k in 1..n {
        term *= lambda / f64::from(k);
        below += term;
    }
    (1.0 - below).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn mad_ignores_one_outlier() {
        let (m, mad) = median_mad(&[10.0, 11.0, 9.0, 10.0, 500.0]).unwrap();
        assert_eq!(m, 10.0);
        assert_eq!(mad, 1.0);
        assert!((robust_z(16.0, m, mad, 0.5) - 6.0 / 1.4826).abs() < 1e-9);
    }

    #[test]
    fn poisson_tail() {
        assert_eq!(poisson_at_least(0, 3.0), 1.0);
        assert!((poisson_at_least(1, 2.0) - (1.0 - (-2.0f64).exp())).abs() < 1e-12);
        assert!((poisson_at_least(5, 2.0) - 0.052_653).abs() < 1e-5);
        assert!(poisson_at_least(5, 0.05) < 1e-7);
        assert_eq!(poisson_at_least(3, 0.0), 0.0);
    }

    #[test]
    fn flat_history_uses_the_floor() {
        let (m, mad) = median_mad(&[4.0, 4.0, 4.0]).unwrap();
        assert_eq!(mad, 0.0);
        assert_eq!(robust_z(10.0, m, mad, 2.0), 3.0);
    }
}
