//! What only features find (cleanlab's Datalab rules, on cosine distances `1 - cos`
//! between feature vectors):
//!
//! - **outlier**: an image's mean distance to its [`K`] nearest training images (itself
//!   left out); the larger, the further the image lies from everything trained on
//!   (cleanlab's `OutOfDistribution` ranks by the same mean, through `exp(-d / median)`).
//! - **near-duplicates**: two images (of either split) closer than [`THRESHOLD`] times the
//!   median distance of every image to its nearest other image, among each one's [`K`]
//!   nearest (Datalab's near-duplicate rule), and any two with the same pixels (found by
//!   their digests, without a model). Pairs are joined into sets (connected components).
use crate::data::SplitKind;
use tch::{Kind, Tensor};

/// Neighbours per image.
pub const K: usize = 10;
/// Near-duplicates lie closer than this share of the median nearest-neighbour distance.
pub const THRESHOLD: f64 = 0.13;
/// Query rows per distance block (a block is `CHUNK x N` f64).
const CHUNK: i64 = 1024;

/// One image of a set of near-duplicates.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub split: SplitKind,
    /// Its position in its split.
    pub index: usize,
    /// Its distance to the nearest other member of its set.
    pub distance: f64,
    /// Whether another member has exactly its pixels.
    pub exact: bool,
}

/// What the features say of every image.
#[derive(Debug)]
pub struct Neighbours {
    /// Mean distance to the [`K`] nearest training images, per split (train, then test).
    pub outlier: Vec<Vec<f64>>,
    /// Sets of two or more near-duplicates, ordered by their first member (training images
    /// first); members in split and index order.
    pub sets: Vec<Vec<Member>>,
    /// The radius pairs were found within: [`THRESHOLD`] x the median nearest distance.
    pub radius: f64,
}

/// The `k` largest cosine similarities of every row of `pool` with the rows `0..limit`
/// of `pool` other than itself: (similarities `[N, k]` f64, indices `[N, k]` i64). `pool`:
/// `[N, D]` f64, rows of unit length (f64: features of one network are often close, and
/// f32's rounding would move the smallest distances by a sizeable share).
fn nearest(pool: &Tensor, limit: i64, k: i64) -> (Tensor, Tensor) {
    let n = pool.size()[0];
    let base = pool.narrow(0, 0, limit);
    let (mut sims, mut idx) = (Vec::new(), Vec::new());
    for start in (0..n).step_by(CHUNK as usize) {
        let len = CHUNK.min(n - start);
        let mut s = pool.narrow(0, start, len).matmul(&base.tr());
        // Each row's own column, where it is one of the base rows, is never its neighbour.
        let own = Tensor::arange_start(start, start + len, (Kind::Int64, pool.device()));
        let inside = own.lt(limit);
        if bool::try_from(inside.any()).unwrap_or(false) {
            let rows = Tensor::arange(len, (Kind::Int64, pool.device())).masked_select(&inside);
            let cols = own.masked_select(&inside);
            let _ = s.index_put_(
                &[Some(rows), Some(cols)],
                &Tensor::from(f64::NEG_INFINITY),
                false,
            );
        }
        let (v, i) = s.topk(k.min(limit - 1).max(1), 1, true, true);
        sims.push(v);
        idx.push(i);
    }
    (Tensor::cat(&sims, 0), Tensor::cat(&idx, 0))
}

/// Outliers and near-duplicate sets of `train` (`[N, D]`) and `test` (`[M, D]`, may be
/// empty), with each image's pixel digest (`digests`: train's, then test's).
pub fn find(train: &Tensor, test: &Tensor, digests: &[String]) -> Neighbours {
    let n_train = train.size()[0];
    let pool = Tensor::cat(&[train, test], 0).to_kind(Kind::Double);
    let norms = pool.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
    let pool = pool / norms;
    let (to_train, _) = nearest(&pool, n_train, K as i64);
    let mean = to_train
        .to_kind(Kind::Double)
        .neg()
        .g_add_scalar(1.0)
        .clamp_min(0.0)
        .mean_dim(1, false, Kind::Double);
    let mean = Vec::<f64>::try_from(mean).expect("f64 distances");
    let outlier = vec![
        mean[..n_train as usize].to_vec(),
        mean[n_train as usize..].to_vec(),
    ];
    let (sims, idx) = nearest(&pool, pool.size()[0], K as i64);
    let dist = Vec::<Vec<f64>>::try_from(
        sims.to_kind(Kind::Double)
            .neg()
            .g_add_scalar(1.0)
            .clamp_min(0.0),
    )
    .expect("f64 distances");
    let idx = Vec::<Vec<i64>>::try_from(idx).expect("i64 indices");
    let mut first: Vec<f64> = dist.iter().map(|d| d[0]).collect();
    first.sort_by(f64::total_cmp);
    let median = first
        .get(first.len() / 2)
        .copied()
        .unwrap_or(0.0)
        .max(1e-12);
    let radius = THRESHOLD * median;
    let mut pairs = Vec::new();
    for (i, (d, j)) in dist.iter().zip(&idx).enumerate() {
        pairs.extend(
            d.iter()
                .zip(j)
                .filter(|(&d, _)| d < radius)
                .map(|(&d, &j)| (i, j as usize, d, false)),
        );
    }
    pairs.extend(exact_pairs(digests));
    Neighbours {
        outlier,
        sets: sets(pool.size()[0] as usize, n_train as usize, &pairs),
        radius,
    }
}

/// Pairs of images with the same pixels (distance 0).
fn exact_pairs(digests: &[String]) -> Vec<(usize, usize, f64, bool)> {
    let mut first = std::collections::HashMap::new();
    let mut pairs = Vec::new();
    for (i, d) in digests.iter().enumerate() {
        match first.get(d) {
            Some(&j) => pairs.push((j, i, 0.0, true)),
            None => {
                first.insert(d, i);
            }
        }
    }
    pairs
}

/// The connected components of `pairs` (positions in the pool, `n_train` training images
/// first) with two or more members.
fn sets(n: usize, n_train: usize, pairs: &[(usize, usize, f64, bool)]) -> Vec<Vec<Member>> {
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut closest = vec![f64::INFINITY; n];
    let mut exact = vec![false; n];
    for &(a, b, d, same) in pairs {
        let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
        parent[ra.max(rb)] = ra.min(rb);
        for i in [a, b] {
            closest[i] = closest[i].min(d);
            exact[i] |= same;
        }
    }
    let mut groups: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, d) in closest.iter().enumerate() {
        if d.is_finite() {
            groups.entry(root(&mut parent, i)).or_default().push(i);
        }
    }
    groups
        .into_values()
        .filter(|g| g.len() > 1)
        .map(|g| {
            g.into_iter()
                .map(|i| Member {
                    split: if i < n_train {
                        SplitKind::Train
                    } else {
                        SplitKind::Test
                    },
                    index: if i < n_train { i } else { i - n_train },
                    distance: closest[i],
                    exact: exact[i],
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(v: &[[f32; 2]]) -> Tensor {
        let flat: Vec<f32> = v.iter().flatten().copied().collect();
        Tensor::from_slice(&flat).view([v.len() as i64, 2])
    }

    #[test]
    fn outliers_are_mean_cosine_distances_to_the_nearest_training_images() {
        // Angles 0, 1, 2, ... degrees and one at 90: its mean distance to the K nearest
        // (every other image, here fewer than K) is the largest.
        let mut v: Vec<[f32; 2]> = (0..6)
            .map(|a| {
                let r = (a as f32).to_radians();
                [r.cos(), r.sin()]
            })
            .collect();
        v.push([0.0, 3.0]);
        let digests: Vec<String> = (0..7).map(|i| i.to_string()).collect();
        let n = find(&rows(&v), &rows(&[]).view([0, 2]), &digests);
        let out = &n.outlier[0];
        let far = out.iter().cloned().fold(f64::MIN, f64::max);
        assert_eq!(out[6], far);
        // By hand: image 6 (90 degrees) against angles 0..5: mean of 1 - cos(90 - a).
        let want: f64 = (0..6)
            .map(|a| 1.0 - (90.0 - a as f64).to_radians().cos())
            .sum::<f64>()
            / 6.0;
        assert!((out[6] - want).abs() < 1e-5, "{} vs {want}", out[6]);
    }

    #[test]
    fn near_duplicates_and_exact_copies_form_sets_across_splits() {
        let mut v: Vec<[f32; 2]> = (0..20)
            .map(|a| {
                let r = (a as f32 * 4.0).to_radians();
                [r.cos(), r.sin()]
            })
            .collect();
        // Image 20 is a tiny rotation of image 3; test image 0 copies image 7's pixels.
        let r = (12.0f32 + 0.01).to_radians();
        v.push([r.cos(), r.sin()]);
        let test = rows(&[[(28.0f32).to_radians().cos(), (28.0f32).to_radians().sin()]]);
        let mut digests: Vec<String> = (0..21).map(|i| format!("d{i}")).collect();
        digests.push("d7".into());
        let n = find(&rows(&v), &test, &digests);
        assert_eq!(n.sets.len(), 2, "{:?}", n.sets);
        let pos: Vec<Vec<(SplitKind, usize, bool)>> = n
            .sets
            .iter()
            .map(|s| s.iter().map(|m| (m.split, m.index, m.exact)).collect())
            .collect();
        assert_eq!(
            pos[0],
            vec![(SplitKind::Train, 3, false), (SplitKind::Train, 20, false)]
        );
        assert_eq!(
            pos[1],
            vec![(SplitKind::Train, 7, true), (SplitKind::Test, 0, true)]
        );
        assert!(n.sets[0][0].distance < n.radius && n.sets[1][0].distance == 0.0);
    }
}
