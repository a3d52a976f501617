//! Class-stratified, seeded subsets (for CPU runs and smoke tests): each class keeps its
//! share of the examples, allotted by largest remainder, and the picked examples stay in
//! dataset order.
use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::Rng;

/// Indices (sorted) of `n` examples drawn per class in proportion to the class sizes.
pub fn stratified(
    labels: &[i64],
    num_classes: usize,
    n: usize,
    rng: &mut impl Rng,
) -> Result<Vec<usize>> {
    if n == 0 {
        bail!("a subset must hold at least one example");
    }
    if n > labels.len() {
        bail!(
            "a subset of {n} examples was asked for, but the split has only {}",
            labels.len()
        );
    }
    let mut by_class = vec![Vec::new(); num_classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    let quotas = quotas(&by_class.iter().map(Vec::len).collect::<Vec<_>>(), n);
    let mut picked = Vec::with_capacity(n);
    for (members, quota) in by_class.iter_mut().zip(quotas) {
        members.shuffle(rng);
        picked.extend_from_slice(&members[..quota]);
    }
    picked.sort_unstable();
    Ok(picked)
}

/// The fold (0 to `folds` - 1) of each example: stratified by `labels`, dealt
/// round-robin after a shuffle within each class, so folds are disjoint, complete and
/// balanced within one example per class.
pub fn folds(labels: &[i64], folds: usize, rng: &mut impl Rng) -> Result<Vec<usize>> {
    if folds < 2 {
        bail!("--folds must be at least 2 (every example needs a model that did not see it)");
    }
    let mut fold = vec![0; labels.len()];
    let mut classes: Vec<i64> = labels.to_vec();
    classes.sort_unstable();
    classes.dedup();
    for c in classes {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
        if members.len() < folds {
            bail!(
                "class {c} has {} training example(s), fewer than the {folds} folds: every fold's \
                 model must see every class (use fewer --folds)",
                members.len()
            );
        }
        members.shuffle(rng);
        for (n, i) in members.into_iter().enumerate() {
            fold[i] = n % folds;
        }
    }
    Ok(fold)
}

/// Splits `n` among classes of the given sizes by largest remainder (ties: lower class).
fn quotas(sizes: &[usize], n: usize) -> Vec<usize> {
    let total: usize = sizes.iter().sum();
    let mut q: Vec<usize> = sizes.iter().map(|&s| s * n / total).collect();
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&c| std::cmp::Reverse((sizes[c] * n) % total));
    let short = n - q.iter().sum::<usize>();
    // The remainders add up to `short` whole examples and each is below one, so at least
    // `short` classes have a non-zero remainder (and room for one more example).
    for &c in order.iter().take(short) {
        q[c] += 1;
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng;

    #[test]
    fn balanced_classes_split_evenly() {
        let labels: Vec<i64> = (0..100).map(|i| i % 10).collect();
        let idx = stratified(&labels, 10, 30, &mut rng::stream(0, "t")).unwrap();
        assert_eq!(idx.len(), 30);
        assert!(idx.windows(2).all(|w| w[0] < w[1]));
        for c in 0..10 {
            assert_eq!(idx.iter().filter(|&&i| labels[i] == c).count(), 3);
        }
    }

    #[test]
    fn proportional_with_remainders() {
        assert_eq!(quotas(&[50, 30, 20], 10), vec![5, 3, 2]);
        // Shares 1.5, 0.9, 0.6: floors 1, 0, 0, then the two largest remainders.
        assert_eq!(quotas(&[5, 3, 2], 3), vec![1, 1, 1]);
        assert_eq!(quotas(&[1, 1, 1], 2), vec![1, 1, 0]);
        assert_eq!(quotas(&[4, 4], 8), vec![4, 4]);
    }

    #[test]
    fn seeded_and_checked() {
        let labels: Vec<i64> = (0..50).map(|i| i % 5).collect();
        let a = stratified(&labels, 5, 10, &mut rng::stream(1, "t")).unwrap();
        let b = stratified(&labels, 5, 10, &mut rng::stream(1, "t")).unwrap();
        let c = stratified(&labels, 5, 10, &mut rng::stream(2, "t")).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(stratified(&labels, 5, 51, &mut rng::stream(1, "t")).is_err());
        assert!(stratified(&labels, 5, 0, &mut rng::stream(1, "t")).is_err());
    }
}
