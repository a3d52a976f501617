//! Streaming reduction over checkpoints: per batch, each checkpoint's pixel maps are folded
//! into a running mean and sum of squared deviations (Welford), so memory holds one B x N
//! map pair per target, never N x K gradient maps.
use super::Reduce;
use tch::{Kind, Tensor};

/// Running statistics of one batch's pixel maps (B x N, f64) over checkpoints.
#[derive(Debug)]
pub struct Accumulator {
    count: usize,
    mean: Tensor,
    m2: Tensor,
    /// Per-example sum of |S| over checkpoints and pixels (for the `cv` variant).
    abs_sum: Tensor,
}

impl Accumulator {
    pub fn new() -> Self {
        Accumulator {
            count: 0,
            mean: Tensor::new(),
            m2: Tensor::new(),
            abs_sum: Tensor::new(),
        }
    }

    /// Statistics gathered elsewhere (gradients captured during training): `count` maps,
    /// their per-pixel `mean` and `m2` (B x N f64) and per-example `abs_sum` (B f64).
    pub fn from_parts(count: usize, mean: Tensor, m2: Tensor, abs_sum: Tensor) -> Self {
        Accumulator {
            count,
            mean,
            m2,
            abs_sum,
        }
    }

    /// Adds one checkpoint's maps (B x N, f64).
    pub fn push(&mut self, map: &Tensor) {
        self.count += 1;
        let abs = map
            .abs()
            .sum_dim_intlist([1i64].as_slice(), false, Kind::Double);
        if self.count == 1 {
            self.mean = map.copy();
            self.m2 = map.zeros_like();
            self.abs_sum = abs;
            return;
        }
        let delta = map - &self.mean;
        self.mean += &delta / self.count as f64;
        self.m2 += delta * (map - &self.mean);
        self.abs_sum += abs;
    }

    /// One value per example (B f64, on the maps' device); needs at least one checkpoint.
    pub fn finish(&self, reduce: Reduce) -> Tensor {
        assert!(self.count > 0, "no checkpoint was accumulated");
        let k = self.count as f64;
        // Population variance over checkpoints (1/K), as in the paper.
        let var = (&self.m2 / k).clamp_min(0.0);
        let dims = [1i64];
        let paper = || var.mean_dim(dims.as_slice(), false, Kind::Double).sqrt();
        match reduce {
            Reduce::Paper => paper(),
            Reduce::Official => var.sqrt().mean_dim(dims.as_slice(), false, Kind::Double),
            Reduce::Cv => {
                let pixels = self.mean.size()[1] as f64;
                let mean_abs = &self.abs_sum / (k * pixels);
                paper() / mean_abs.clamp_min(1e-300)
            }
        }
    }
}

impl Default for Accumulator {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn maps(values: &[[f64; 2]]) -> Vec<Tensor> {
        values
            .iter()
            .map(|v| Tensor::from_slice(v).view([1, 2]))
            .collect()
    }

    fn run(values: &[[f64; 2]], reduce: Reduce) -> f64 {
        let mut acc = Accumulator::new();
        for m in maps(values) {
            acc.push(&m);
        }
        acc.finish(reduce).double_value(&[0])
    }

    #[test]
    fn by_hand() {
        // Pixel 0 over 3 checkpoints: 1, 2, 3 -> variance 2/3. Pixel 1: 0, 0, 6 -> mean 2,
        // deviations -2, -2, 4 -> variance 24/3 = 8.
        let v = [[1.0, 0.0], [2.0, 0.0], [3.0, 6.0]];
        let paper = ((2.0 / 3.0 + 8.0) / 2.0f64).sqrt();
        assert!((run(&v, Reduce::Paper) - paper).abs() < 1e-12);
        let official = ((2.0f64 / 3.0).sqrt() + 8.0f64.sqrt()) / 2.0;
        assert!((run(&v, Reduce::Official) - official).abs() < 1e-12);
        // Mean |S| = (1 + 2 + 3 + 0 + 0 + 6) / 6 = 2.
        assert!((run(&v, Reduce::Cv) - paper / 2.0).abs() < 1e-12);
        // Constant gradients have no variance.
        assert_eq!(run(&[[1.5, -2.0]; 4], Reduce::Paper), 0.0);
    }

    #[test]
    fn streamed_equals_stacked() {
        let stack = Tensor::randn([7, 5, 12], (Kind::Double, Device::Cpu)) * 1e-3;
        let mut acc = Accumulator::new();
        for t in 0..7 {
            acc.push(&stack.get(t));
        }
        let var = stack.var_dim([0i64].as_slice(), false, false);
        let direct = var.mean_dim([1i64].as_slice(), false, Kind::Double).sqrt();
        let direct = Vec::<f64>::try_from(direct).unwrap();
        for (a, b) in Vec::<f64>::try_from(acc.finish(Reduce::Paper))
            .unwrap()
            .iter()
            .zip(&direct)
        {
            assert!((a - b).abs() <= 1e-12 * b, "{a} vs {b}");
        }
        let official =
            Vec::<f64>::try_from(var.sqrt().mean_dim([1i64].as_slice(), false, Kind::Double))
                .unwrap();
        for (a, b) in Vec::<f64>::try_from(acc.finish(Reduce::Official))
            .unwrap()
            .iter()
            .zip(&official)
        {
            assert!((a - b).abs() <= 1e-12 * b, "{a} vs {b}");
        }
    }
}
