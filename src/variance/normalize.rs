//! Class normalization (Agarwal & Hooker, Section 2): VoG is z-scored within each class,
//! `(v - mean_c) / std_c` with the population standard deviation over the scored examples
//! of class c, because gradient scales differ between classes.

/// Normalized scores and the classes that had a single example or no spread (those get 0).
pub fn by_class(raw: &[f64], classes: &[i64]) -> (Vec<f64>, Vec<i64>) {
    let mut groups: std::collections::BTreeMap<i64, Vec<usize>> = Default::default();
    for (i, &c) in classes.iter().enumerate() {
        groups.entry(c).or_default().push(i);
    }
    let mut out = vec![0.0; raw.len()];
    let mut degenerate = Vec::new();
    for (class, members) in groups {
        let n = members.len() as f64;
        let mean = members.iter().map(|&i| raw[i]).sum::<f64>() / n;
        let var = members
            .iter()
            .map(|&i| (raw[i] - mean).powi(2))
            .sum::<f64>()
            / n;
        let std = var.sqrt();
        if members.len() < 2 || std <= f64::EPSILON * mean.abs().max(f64::MIN_POSITIVE) {
            degenerate.push(class);
            continue;
        }
        for &i in &members {
            out[i] = (raw[i] - mean) / std;
        }
    }
    (out, degenerate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_mean_unit_std_per_class() {
        let raw = [1.0, 10.0, 3.0, 20.0, 5.0, 60.0];
        let classes = [0, 1, 0, 1, 0, 1];
        let (z, bad) = by_class(&raw, &classes);
        assert!(bad.is_empty());
        // Class 0: 1, 3, 5 -> mean 3, population std sqrt(8/3).
        let s = (8.0f64 / 3.0).sqrt();
        assert!(
            (z[0] + 2.0 / s).abs() < 1e-12 && z[2].abs() < 1e-12 && (z[4] - 2.0 / s).abs() < 1e-12
        );
        for c in 0..2 {
            let zs: Vec<f64> = (0..6).filter(|i| classes[*i] == c).map(|i| z[i]).collect();
            let mean = zs.iter().sum::<f64>() / 3.0;
            let var = zs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 3.0;
            assert!(mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn single_example_or_no_spread_gives_zero() {
        let (z, bad) = by_class(&[4.0, 2.0, 2.0, 7.0, 9.0], &[0, 1, 1, 2, 2]);
        assert_eq!(bad, vec![0, 1]);
        assert_eq!(&z[..3], &[0.0, 0.0, 0.0]);
        assert!((z[3] + 1.0).abs() < 1e-12 && (z[4] - 1.0).abs() < 1e-12);
    }
}
