//! Multinomial logistic regression on fixed features, the fold model of `vog crossval
//! --features`: a linear layer on a frozen network's features (the linear probe), fitted in
//! seconds where retraining the network takes hours.
//!
//! The objective is scikit-learn's `LogisticRegression` (multinomial, L2, intercept not
//! penalized) divided by the number of examples, so it has the same minimizer for the same
//! `C`:
//!
//! ```text
//! f(W, b) = (1/N) sum_i -log softmax(x_i W + b)[y_i] + ||W||^2 / (2 C N)
//! ```
//!
//! It is strictly convex in `W`; L-BFGS (10 pairs, backtracking Armijo line search) runs in
//! f64 until the largest gradient component is below [`TOLERANCE`]. Features are
//! standardized with the mean and standard deviation of the rows the model is fitted on.
//! `C` is chosen by the rule of [`choose_c`]: stratified 3-fold cross-validation within
//! the fitting rows (2-fold where a class has only two), over [`GRID`], lowest mean
//! held-out log loss, ties to the smaller `C`.
use crate::data::subset;
use anyhow::{bail, Result};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// The values of `C` that [`choose_c`] tries.
pub const GRID: [f64; 5] = [1e-3, 1e-2, 1e-1, 1.0, 10.0];
/// Inner folds of [`choose_c`] (fewer where a class has fewer examples, at least 2).
pub const INNER_FOLDS: usize = 3;
/// The largest gradient component at which a fit stops.
pub const TOLERANCE: f64 = 1e-7;
/// Iterations after which a fit stops unconverged (and says so).
pub const MAX_ITERATIONS: usize = 2000;
const MEMORY: usize = 10;

/// Column means and standard deviations (population, as scikit-learn's StandardScaler) of
/// the rows a model is fitted on; a constant column is divided by 1.
pub struct Standardizer {
    mean: Tensor,
    std: Tensor,
}

impl Standardizer {
    /// `x`: `[N, D]` f64.
    pub fn fit(x: &Tensor) -> Self {
        let mean = x.mean_dim(0, true, Kind::Double);
        let var = (x - &mean).square().mean_dim(0, true, Kind::Double);
        let std = var.sqrt();
        let std = std.where_self(&std.gt(0.0), &std.ones_like());
        Standardizer { mean, std }
    }

    pub fn apply(&self, x: &Tensor) -> Tensor {
        (x - &self.mean) / &self.std
    }
}

/// A fitted model: `weights` `[D, C]` and `bias` `[C]`, f64.
pub struct Fit {
    /// `[D + 1, C]`: the weights, then the bias row.
    theta: Tensor,
    pub weights: Tensor,
    pub bias: Tensor,
    pub iterations: usize,
    pub converged: bool,
}

impl Fit {
    /// Class probabilities of `x` (`[N, D]` f64, standardized as fitted): `[N, C]` f64.
    pub fn predict(&self, x: &Tensor) -> Tensor {
        (x.matmul(&self.weights) + &self.bias).softmax(1, Kind::Double)
    }
}

/// The objective and its gradient at `theta` (`[D + 1, C]`: weights, then the bias row).
fn objective(x: &Tensor, onehot: &Tensor, theta: &Tensor, c: f64) -> (f64, Tensor) {
    let n = x.size()[0] as f64;
    let d = x.size()[1];
    let w = theta.narrow(0, 0, d);
    let b = theta.narrow(0, d, 1);
    let logp = (x.matmul(&w) + &b).log_softmax(1, Kind::Double);
    let loss = -(&logp * onehot).sum(Kind::Double).double_value(&[]) / n;
    let penalty = w.square().sum(Kind::Double).double_value(&[]) / (2.0 * c * n);
    let residual = (logp.exp() - onehot) / n;
    let gw = x.tr().matmul(&residual) + &w / (c * n);
    let gb = residual.sum_dim_intlist(0, true, Kind::Double);
    (loss + penalty, Tensor::cat(&[gw, gb], 0))
}

/// Fits `x` (`[N, D]` f64, standardized) to `y` (`[N]` i64 class indices below
/// `classes`) with inverse regularization `c`.
pub fn fit(x: &Tensor, y: &Tensor, classes: i64, c: f64) -> Fit {
    let zeros = Tensor::zeros([x.size()[1] + 1, classes], (Kind::Double, x.device()));
    fit_from(x, y, c, zeros)
}

/// [`fit`] started at `theta` (`[D + 1, C]`: weights, then the bias row), e.g. the
/// solution for a smaller `c`: the minimizer is unique, only the iterations differ.
fn fit_from(x: &Tensor, y: &Tensor, c: f64, mut theta: Tensor) -> Fit {
    let (d, classes) = (x.size()[1], theta.size()[1]);
    let onehot = y.one_hot(classes).to_kind(Kind::Double);
    let (mut f, mut g) = objective(x, &onehot, &theta, c);
    let mut pairs: Vec<(Tensor, Tensor, f64)> = Vec::new();
    for it in 0..MAX_ITERATIONS {
        let gmax = g.abs().max().double_value(&[]);
        if gmax < TOLERANCE {
            return done(theta, d, it, true);
        }
        let dir = -two_loop(&g, &pairs);
        let slope = (&dir * &g).sum(Kind::Double).double_value(&[]);
        let mut step = if pairs.is_empty() {
            1.0 / gmax.max(1.0)
        } else {
            1.0
        };
        let (next, fn_, gn) = loop {
            let next = &theta + &dir * step;
            let (fn_, gn) = objective(x, &onehot, &next, c);
            if fn_ <= f + 1e-4 * step * slope || step < 1e-12 {
                break (next, fn_, gn);
            }
            step *= 0.5;
        };
        let s = &next - &theta;
        let yv = &gn - &g;
        let sy = (&s * &yv).sum(Kind::Double).double_value(&[]);
        if sy > 1e-12 {
            pairs.push((s, yv, 1.0 / sy));
            if pairs.len() > MEMORY {
                drop(pairs.remove(0));
            }
        }
        if f - fn_ <= 0.0 && step < 1e-12 {
            return done(next, d, it + 1, false);
        }
        (theta, f, g) = (next, fn_, gn);
    }
    done(theta, d, MAX_ITERATIONS, false)
}

fn done(theta: Tensor, d: i64, iterations: usize, converged: bool) -> Fit {
    Fit {
        theta: theta.shallow_clone(),
        weights: theta.narrow(0, 0, d),
        bias: theta.narrow(0, d, 1).squeeze_dim(0),
        iterations,
        converged,
    }
}

/// L-BFGS's two-loop recursion: the inverse-Hessian estimate times `g`.
fn two_loop(g: &Tensor, pairs: &[(Tensor, Tensor, f64)]) -> Tensor {
    let dot = |a: &Tensor, b: &Tensor| (a * b).sum(Kind::Double).double_value(&[]);
    let mut q = g.copy();
    let mut alphas = Vec::with_capacity(pairs.len());
    for (s, y, rho) in pairs.iter().rev() {
        let a = rho * dot(s, &q);
        q -= y * a;
        alphas.push(a);
    }
    if let Some((s, y, _)) = pairs.last() {
        q *= dot(s, y) / dot(y, y);
    }
    for ((s, y, rho), a) in pairs.iter().zip(alphas.into_iter().rev()) {
        let b = rho * dot(y, &q);
        q += s * (a - b);
    }
    q
}

/// How `C` was chosen for one model: the grid's mean held-out log loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub c: f64,
    /// Mean inner held-out log loss per value of [`GRID`].
    pub log_loss: Vec<f64>,
    /// The inner folds it was chosen with.
    #[serde(default)]
    pub inner_folds: usize,
}

/// Chooses `C` for fitting `x` (`[N, D]` f64, raw) to `labels`: stratified
/// cross-validation (folds drawn from `rng`; [`INNER_FOLDS`], or as many as the smallest
/// class has examples, at least 2), each inner model standardized on its own rows, lowest
/// mean held-out log loss over [`GRID`], ties to the smaller `C`. Refuses a class with a
/// single example.
pub fn choose_c(x: &Tensor, labels: &[i64], classes: i64, rng: &mut impl Rng) -> Result<Choice> {
    let mut counts = vec![0usize; classes as usize];
    labels.iter().for_each(|&l| counts[l as usize] += 1);
    let (small, &fewest) = counts
        .iter()
        .enumerate()
        .min_by_key(|(_, &n)| n)
        .expect("at least one class");
    if fewest < 2 {
        bail!(
            "class {small} has {fewest} example(s) in a fold model's training part: choosing \
             the regularization by inner cross-validation needs at least 2 in every class (use \
             fewer --folds)"
        );
    }
    let folds = INNER_FOLDS.min(fewest);
    let inner = subset::folds(labels, folds, rng)?;
    let y = Tensor::from_slice(labels).to_device(x.device());
    let mut log_loss = vec![0.0; GRID.len()];
    for f in 0..folds {
        let rows = |held: bool| -> Tensor {
            let at: Vec<i64> = (0..labels.len())
                .filter(|&i| (inner[i] == f) == held)
                .map(|i| i as i64)
                .collect();
            Tensor::from_slice(&at).to_device(x.device())
        };
        let (fit_at, held_at) = (rows(false), rows(true));
        let (xf, xh) = (x.index_select(0, &fit_at), x.index_select(0, &held_at));
        let scaler = Standardizer::fit(&xf);
        let (xf, xh) = (scaler.apply(&xf), scaler.apply(&xh));
        let (yf, yh) = (y.index_select(0, &fit_at), y.index_select(0, &held_at));
        // Increasing C, each fit started at the last one's solution (a regularization path).
        let mut theta = Tensor::zeros([x.size()[1] + 1, classes], (Kind::Double, x.device()));
        for (k, &c) in GRID.iter().enumerate() {
            let model = fit_from(&xf, &yf, c, theta);
            let p = model.predict(&xh);
            theta = model.theta;
            let nll = -p
                .clamp_min(1e-300)
                .log()
                .gather(1, &yh.unsqueeze(1), false)
                .mean(Kind::Double)
                .double_value(&[]);
            log_loss[k] += nll / folds as f64;
        }
    }
    let best = (0..GRID.len()).fold(0, |b, k| if log_loss[k] < log_loss[b] { k } else { b });
    Ok(Choice {
        c: GRID[best],
        log_loss,
        inner_folds: folds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warm_start_reaches_the_same_minimizer() {
        let x = Tensor::randn([40, 3], (Kind::Double, tch::Device::Cpu));
        let y = Tensor::from_slice(&(0..40).map(|i| i % 3).collect::<Vec<i64>>());
        let cold = fit(&x, &y, 3, 1.0);
        let warm = fit_from(&x, &y, 1.0, fit(&x, &y, 3, 0.1).theta);
        let diff = (cold.predict(&x) - warm.predict(&x))
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff < 1e-6, "{diff}");
    }

    /// Two classes, one feature: the optimum of the objective solves its stationarity
    /// conditions, checked by hand-computable sums.
    #[test]
    fn the_fit_is_the_objectives_stationary_point() {
        let x = Tensor::from_slice(&[-2.0f64, -1.0, 0.5, 1.0, 2.0, -0.5]).view([6, 1]);
        let y = Tensor::from_slice(&[0i64, 0, 1, 1, 1, 0]);
        let c = 0.5;
        let fit = fit(&x, &y, 2, c);
        assert!(fit.converged, "{} iterations", fit.iterations);
        let p = fit.predict(&x);
        let onehot = y.one_hot(2).to_kind(Kind::Double);
        // d/db: sum (p - y) = 0 per class; d/dW: X^T (p - y) + W / C = 0.
        let r = &p - &onehot;
        let gb = r.sum_dim_intlist(0, false, Kind::Double);
        let gw = x.tr().matmul(&r) + &fit.weights / c;
        assert!(gb.abs().max().double_value(&[]) < 1e-5, "{gb}");
        assert!(gw.abs().max().double_value(&[]) < 1e-5, "{gw}");
        // The rows sum to one and the classes separate in the right direction.
        let sums = p.sum_dim_intlist(1, false, Kind::Double);
        assert!((sums - 1.0).abs().max().double_value(&[]) < 1e-12);
        assert!(p.double_value(&[4, 1]) > 0.8 && p.double_value(&[0, 0]) > 0.8);
    }

    #[test]
    fn standardizing_centres_and_scales_and_leaves_constant_columns() {
        let x = Tensor::from_slice(&[1.0f64, 5.0, 3.0, 5.0]).view([2, 2]);
        let z = Standardizer::fit(&x).apply(&x);
        let z = Vec::<f64>::try_from(z.flatten(0, -1)).unwrap();
        assert_eq!(z, vec![-1.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn choosing_c_prefers_little_regularization_on_separable_data_and_refuses_tiny_classes() {
        let mut rng = crate::rng::stream(0, "test");
        let labels: Vec<i64> = (0..60).map(|i| i % 3).collect();
        let x = Tensor::from_slice(&labels)
            .to_kind(Kind::Double)
            .view([60, 1])
            .repeat([1, 2])
            + Tensor::randn([60, 2], (Kind::Double, tch::Device::Cpu)) * 0.05;
        let choice = choose_c(&x, &labels, 3, &mut rng).unwrap();
        assert!(choice.c >= 1.0, "{choice:?}");
        assert_eq!(choice.log_loss.len(), GRID.len());
        // Two of a class: two inner folds; one: refused.
        let two = choose_c(&x.narrow(0, 0, 6), &labels[..6], 3, &mut rng).unwrap();
        assert_eq!((choice.inner_folds, two.inner_folds), (3, 2));
        let err = choose_c(&x.narrow(0, 0, 5), &labels[..5], 3, &mut rng)
            .unwrap_err()
            .to_string();
        assert!(err.contains("class 2 has 1 example(s)"), "{err}");
    }
}
