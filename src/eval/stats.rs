//! The statistics the evaluations need: AUROC (Mann-Whitney, ties counted half) with its
//! DeLong standard error, 95% interval and one-sided p-value (DeLong, DeLong & Clarke-Pearson
//! 1988, in the midrank form of Sun & Xu 2014), Pearson r
//! with its two-sided p-value (Student's t with n-2 degrees of freedom, through the
//! regularized incomplete beta function), Spearman rho (Pearson of average ranks) and
//! quantiles with linear interpolation (numpy's default).

/// Probability that a random positive scores above a random negative (ties count 1/2);
/// `None` without both classes.
#[cfg(test)]
pub fn auroc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let r = ranks(scores);
    let rank_sum: f64 = r
        .iter()
        .zip(positive)
        .filter(|(_, &p)| p)
        .map(|(r, _)| r)
        .sum();
    let u = rank_sum - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Some(u / (n_pos * n_neg) as f64)
}

/// An AUROC with its uncertainty (DeLong).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AurocTest {
    pub auroc: f64,
    /// 95% normal interval, clipped to [0, 1].
    pub ci_low: f64,
    pub ci_high: f64,
    /// One-sided p-value against AUROC = 0.5, in the direction the AUROC deviates (so it
    /// is below 0.025 exactly when the interval excludes 0.5).
    pub p_value: f64,
    pub positives: usize,
    pub negatives: usize,
}

/// z of a two-sided 95% normal interval.
pub const Z95: f64 = 1.959963984540054;

/// AUROC of `scores` for `positive` with DeLong's interval and p-value; `None` unless there
/// are at least two positives and two negatives.
pub fn auroc_test(scores: &[f64], positive: &[bool]) -> Option<AurocTest> {
    let m = positive.iter().filter(|&&p| p).count();
    let n = positive.len() - m;
    if m < 2 || n < 2 {
        return None;
    }
    let pick = |want: bool| -> Vec<f64> {
        scores
            .iter()
            .zip(positive)
            .filter(|(_, &p)| p == want)
            .map(|(s, _)| *s)
            .collect()
    };
    let (x, y) = (pick(true), pick(false));
    let (all, rx, ry) = (ranks(scores), ranks(&x), ranks(&y));
    let (mut ix, mut iy) = (0, 0);
    // Placements: the share of the other class each example beats (ties half).
    let mut v10 = Vec::with_capacity(m);
    let mut v01 = Vec::with_capacity(n);
    for (r, &p) in all.iter().zip(positive) {
        if p {
            v10.push((r - rx[ix]) / n as f64);
            ix += 1;
        } else {
            v01.push(1.0 - (r - ry[iy]) / m as f64);
            iy += 1;
        }
    }
    let auc = v10.iter().sum::<f64>() / m as f64;
    let var = |v: &[f64]| v.iter().map(|a| (a - auc).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
    let se = (var(&v10) / m as f64 + var(&v01) / n as f64).sqrt();
    let p_value = if se > 0.0 {
        normal_sf((auc - 0.5).abs() / se)
    } else if auc != 0.5 {
        0.0
    } else {
        0.5
    };
    Some(AurocTest {
        auroc: auc,
        ci_low: (auc - Z95 * se).max(0.0),
        ci_high: (auc + Z95 * se).min(1.0),
        p_value,
        positives: m,
        negatives: n,
    })
}

/// Upper tail of the standard normal, P(Z > z).
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The complementary error function (Numerical Recipes' Chebyshev fit, relative error
/// below 1.2e-7 everywhere).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    const C: [f64; 10] = [
        -1.26551223,
        1.00002368,
        0.37409196,
        0.09678418,
        -0.18628806,
        0.27886807,
        -1.13520398,
        1.48851587,
        -0.82215223,
        0.17087277,
    ];
    let poly = C.iter().rev().fold(0.0, |acc, c| c + t * acc);
    let ans = t * (-z * z + poly).exp();
    if x >= 0.0 {
        ans
    } else {
        2.0 - ans
    }
}

/// 1-based ranks, ties given their average rank.
pub fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut out = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            out[k] = avg;
        }
        i = j + 1;
    }
    out
}

/// Pearson correlation; `None` for fewer than two points or zero variance.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len() as f64;
    if x.len() < 2 || x.len() != y.len() {
        return None;
    }
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let syy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    if sxx == 0.0 || syy == 0.0 {
        return None;
    }
    Some((sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

/// Two-sided p-value of Pearson's r over n points (null: no correlation).
pub fn pearson_p(r: f64, n: usize) -> Option<f64> {
    if n < 3 {
        return None;
    }
    let df = (n - 2) as f64;
    if r.abs() >= 1.0 {
        return Some(0.0);
    }
    let t2 = r * r * df / (1.0 - r * r);
    Some(incomplete_beta(df / 2.0, 0.5, df / (df + t2)))
}

/// Spearman rank correlation.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    pearson(&ranks(x), &ranks(y))
}

/// Quantile `q` in [0, 1] of sorted values, interpolating linearly.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Regularized incomplete beta I_x(a, b) (continued fraction, Numerical Recipes 6.4).
pub fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_fraction(a, b, x) / a
    } else {
        1.0 - ln_front.exp() * beta_fraction(b, a, 1.0 - x) / b
    }
}

fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    d = 1.0 / if d.abs() < TINY { TINY } else { d };
    let mut h = d;
    for m in 1..300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        for aa in [
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ] {
            d = 1.0 + aa * d;
            d = 1.0 / if d.abs() < TINY { TINY } else { d };
            c = 1.0 + aa / c;
            c = if c.abs() < TINY { TINY } else { c };
            h *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// ln Gamma(x) for x > 0 (Lanczos, g = 7).
pub fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let s = C[1..]
        .iter()
        .enumerate()
        .fold(C[0], |s, (i, c)| s + c / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + s.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} vs {b}");
    }

    #[test]
    fn auroc_known_cases() {
        assert_eq!(
            auroc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            auroc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
            Some(0.0)
        );
        assert_eq!(auroc(&[0.5; 4], &[false, true, false, true]), Some(0.5));
        // By hand: 11 of 12 positive-negative pairs won, ties counted half.
        let s = [0.8, 0.4, 0.4, 0.9, 0.1, 0.4, 0.35];
        let p = [true, true, true, true, false, false, false];
        close(auroc(&s, &p).unwrap(), 11.0 / 12.0, 1e-15);
        assert_eq!(auroc(&[1.0, 2.0], &[true, true]), None);
    }

    #[test]
    fn delong_matches_an_independent_implementation() {
        // An O(mn) DeLong in Python (pairwise placements, sample variances, math.erfc)
        // on the same data gave these values.
        let s = [0.8, 0.4, 0.4, 0.9, 0.1, 0.4, 0.35];
        let p = [true, true, true, true, false, false, false];
        let t = auroc_test(&s, &p).unwrap();
        close(t.auroc, 0.9166666666666667, 1e-15);
        close(t.ci_low, 0.7280690443206381, 1e-12);
        assert_eq!(t.ci_high, 1.0);
        close(t.p_value / 7.451167896213848e-06, 1.0, 1e-6);
        assert_eq!((t.positives, t.negatives), (4, 3));
        let s: Vec<f64> = (0..30)
            .map(|i| ((i * 37 % 23) as f64) / 23.0 + if i % 3 == 0 { 0.3 } else { 0.0 })
            .collect();
        let p: Vec<bool> = (0..30).map(|i| i % 3 == 0).collect();
        let t = auroc_test(&s, &p).unwrap();
        close(t.auroc, 0.815, 1e-12);
        close(t.ci_low, 0.6507815026818942, 1e-9);
        close(t.ci_high, 0.979218497318106, 1e-9);
        close(t.p_value / 8.510754960718684e-05, 1.0, 1e-6);
        // Perfect separation has no spread: the interval is a point.
        let t = auroc_test(&[1., 2., 3., 4.], &[false, false, true, true]).unwrap();
        assert_eq!(
            (t.auroc, t.ci_low, t.ci_high, t.p_value),
            (1.0, 1.0, 1.0, 0.0)
        );
        assert!(auroc_test(&[1., 2., 3.], &[true, false, false]).is_none());
        // The p-value follows the direction of the deviation: mirrored scores, same p.
        let neg: Vec<f64> = s.iter().map(|v| -v).collect();
        let t = auroc_test(&neg, &p).unwrap();
        close(t.auroc, 0.185, 1e-12);
        close(t.p_value / 8.510754960718684e-05, 1.0, 1e-6);
        close(normal_sf(-1.0), 0.8413447460685429, 1e-7);
        close(normal_sf(2.5) / 0.006209665325776139, 1.0, 1e-6);
    }

    #[test]
    fn correlations_match_scipy() {
        // scipy.stats.pearsonr / spearmanr on the same data.
        let r = pearson(&[1., 2., 3., 4., 5.], &[10., 9., 2.5, 6., 4.]).unwrap();
        close(r, -0.7426106572325057, 1e-12);
        close(pearson_p(r, 5).unwrap(), 0.15055580885344547, 1e-10);
        let x: Vec<f64> = (1..=10).map(f64::from).collect();
        let y = [2., 1., 4., 3., 7., 8., 5., 6., 9., 12.];
        let r = pearson(&x, &y).unwrap();
        close(r, 0.879438085881194, 1e-12);
        close(pearson_p(r, 10).unwrap(), 0.0007971896402990637, 1e-12);
        close(
            spearman(&[1., 2., 2., 3., 5.], &[3., 1., 4., 4., 9.]).unwrap(),
            0.7631578947368421,
            1e-12,
        );
        assert_eq!(pearson(&[1., 1., 1.], &[1., 2., 3.]), None);
        assert_eq!(pearson_p(1.0, 5), Some(0.0));
    }

    #[test]
    fn ranks_and_quantiles() {
        assert_eq!(ranks(&[3., 1., 3., 2.]), vec![3.5, 1.0, 3.5, 2.0]);
        let mut v = [3., 1., 4., 1., 5., 9., 2., 6.];
        v.sort_by(f64::total_cmp);
        // numpy.quantile(..., [0.25, 0.5, 0.75]) = [1.75, 3.5, 5.25]
        close(quantile(&v, 0.25), 1.75, 1e-12);
        close(quantile(&v, 0.5), 3.5, 1e-12);
        close(quantile(&v, 0.75), 5.25, 1e-12);
        close(ln_gamma(5.0), 24f64.ln(), 1e-12);
        close(incomplete_beta(2.0, 3.0, 0.4), 0.5248, 1e-12);
    }
}
