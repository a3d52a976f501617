//! Stochastic gradient descent with momentum, written out so that its whole state can be
//! saved and restored (libtorch's SGD, as tch exposes it, keeps its momentum buffers out of
//! reach). The update is exactly `torch.optim.SGD`'s with dampening 0:
//!
//! ```text
//! d = grad + weight_decay * p
//! buf = d                          (first step)
//! buf = momentum * buf + d         (later steps)
//! d = d + momentum * buf  if nesterov, else buf
//! p = p - lr * d                   (in place, without autograd)
//! ```
//!
//! Every step updates all parameters with libtorch's multi-tensor kernels, as
//! `torch.optim.SGD(foreach=True)`. `scripts/reference_sgd.py` runs `torch.optim.SGD`
//! (per tensor, and `--foreach`) on the same small network and the same batches;
//! `tests/parity.rs` requires agreement within 1e-6 at every step.
use anyhow::{bail, Result};
use std::collections::HashMap;
use tch::nn::VarStore;
use tch::Tensor;

/// The optimizer's settings (the learning rate changes per epoch and is passed to each step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
}

/// Dynamic loss scaling for fp16 training, with `torch.amp.GradScaler`'s defaults: the
/// loss is multiplied by `scale` before the backward pass so small fp16 gradients do not
/// flush to zero, the gradients divided by it again; a step whose gradients are not finite
/// is skipped and halves the scale, 2000 finite steps in a row double it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossScale {
    pub scale: f64,
    /// Finite steps since the scale last changed.
    pub good_steps: u32,
}

impl LossScale {
    const INITIAL: f64 = 65536.0;
    const GROWTH_INTERVAL: u32 = 2000;
    /// The name of its entry in [`Sgd::state`] (no parameter has it).
    const STATE: &'static str = "loss_scale";

    pub fn new() -> Self {
        LossScale {
            scale: Self::INITIAL,
            good_steps: 0,
        }
    }

    /// Records a step; returns whether its gradients were finite.
    fn update(&mut self, finite: bool) -> bool {
        if finite {
            self.good_steps += 1;
            if self.good_steps == Self::GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        } else {
            self.scale *= 0.5;
            self.good_steps = 0;
        }
        finite
    }
}

impl Default for LossScale {
    fn default() -> Self {
        Self::new()
    }
}

/// SGD over named parameters, with one momentum buffer per parameter once it has had a
/// gradient.
pub struct Sgd {
    config: SgdConfig,
    /// (name, parameter), sorted by name.
    params: Vec<(String, Tensor)>,
    /// Momentum buffers by parameter name; absent before a parameter's first step.
    buffers: HashMap<String, Tensor>,
    /// Set for fp16 training.
    loss_scale: Option<LossScale>,
}

impl Sgd {
    /// SGD over every trainable variable of `vs` (those that require a gradient).
    pub fn new(vs: &VarStore, config: SgdConfig) -> Self {
        let params = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        Self::over(params, config)
    }

    /// SGD over the given (name, parameter) pairs.
    pub fn over(mut params: Vec<(String, Tensor)>, config: SgdConfig) -> Self {
        params.sort_by(|a, b| a.0.cmp(&b.0));
        Sgd {
            config,
            params,
            buffers: HashMap::new(),
            loss_scale: None,
        }
    }

    /// The same optimizer scaling the loss dynamically (for fp16 training).
    pub fn with_loss_scale(mut self) -> Self {
        self.loss_scale = Some(LossScale::new());
        self
    }

    /// The current loss scale, if the loss is scaled.
    #[cfg(test)]
    pub fn loss_scale(&self) -> Option<LossScale> {
        self.loss_scale
    }

    /// The gradient of `loss` with respect to every parameter, then one step at learning
    /// rate `lr`. The gradients are computed fresh (as `zero_grad(set_to_none=True)`
    /// leaves them), not accumulated into the parameters' `.grad`.
    /// With a loss scale, the step is skipped where the gradients are not finite (one
    /// host synchronisation per step).
    pub fn backward_step(&mut self, loss: &Tensor, lr: f64) {
        let params: Vec<&Tensor> = self.params.iter().map(|(_, p)| p).collect();
        let Some(scale) = self.loss_scale.as_mut() else {
            let grads = Tensor::run_backward(&[loss], &params, false, false);
            self.step(grads, lr);
            return;
        };
        let scaled = loss * scale.scale;
        let mut grads = Tensor::run_backward(&[&scaled], &params, false, false);
        let inverse = 1.0 / scale.scale;
        let finite = tch::no_grad(|| {
            let flags: Vec<Tensor> = grads
                .iter_mut()
                .filter(|g| g.defined())
                .map(|g| {
                    let _ = g.g_mul_scalar_(inverse);
                    g.isfinite().all()
                })
                .collect();
            flags.is_empty() || Tensor::stack(&flags, 0).all().int64_value(&[]) != 0
        });
        if scale.update(finite) {
            self.step(grads, lr);
        }
    }

    /// One update of every parameter that has a gradient in `grads` (same order), with
    /// libtorch's multi-tensor kernels: three or four launches a step for the whole network
    /// (as `torch.optim.SGD(foreach=True)`), not four per parameter tensor, which bound a
    /// narrow network's step on a GPU.
    fn step(&mut self, grads: Vec<Tensor>, lr: f64) {
        let SgdConfig {
            momentum,
            weight_decay,
            nesterov,
        } = self.config;
        // The parameters with a gradient this step, with their names and gradients.
        let (mut names, mut params, mut d) = (Vec::new(), Vec::new(), Vec::new());
        for ((name, p), g) in self.params.iter().zip(grads) {
            if g.defined() {
                names.push(name.clone());
                params.push(p.shallow_clone());
                d.push(g);
            }
        }
        if params.is_empty() {
            return;
        }
        tch::no_grad(|| {
            if weight_decay != 0.0 {
                foreach_add_(&mut d, &params, weight_decay);
            }
            if momentum != 0.0 {
                let bufs = self.momentum_buffers(&names, &d, momentum);
                if nesterov {
                    foreach_add_(&mut d, &bufs, momentum);
                } else {
                    d = bufs;
                }
            }
            foreach_add_(&mut params, &d, -lr);
        });
    }

    /// The momentum buffers of the parameters `names` after this step's update with their
    /// gradients `grads`: `momentum * buf + d`, in two multi-tensor launches once every
    /// parameter has one; a parameter's first buffer is a copy of its `d`.
    fn momentum_buffers(
        &mut self,
        names: &[String],
        grads: &[Tensor],
        momentum: f64,
    ) -> Vec<Tensor> {
        if names.iter().all(|n| self.buffers.contains_key(n)) {
            let mut bufs: Vec<Tensor> = names
                .iter()
                .map(|n| self.buffers[n].shallow_clone())
                .collect();
            foreach_mul_(&mut bufs, momentum);
            foreach_add_(&mut bufs, grads, 1.0);
            return bufs;
        }
        names
            .iter()
            .zip(grads)
            .map(|(name, d)| match self.buffers.get_mut(name) {
                Some(buf) => {
                    let _ = buf.g_mul_scalar_(momentum).g_add_(d);
                    buf.shallow_clone()
                }
                None => {
                    let buf = d.copy();
                    self.buffers.insert(name.clone(), buf.shallow_clone());
                    buf
                }
            })
            .collect()
    }

    /// The momentum buffers, by parameter name (sorted), and the loss scale where there is
    /// one (as `loss_scale`: f64 [scale, good steps]), for saving.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut state: Vec<(String, Tensor)> = self
            .buffers
            .iter()
            .map(|(k, v)| (k.clone(), v.shallow_clone()))
            .collect();
        if let Some(s) = self.loss_scale {
            let v = Tensor::from_slice(&[s.scale, s.good_steps as f64]);
            state.push((LossScale::STATE.to_string(), v));
        }
        state.sort_by(|a, b| a.0.cmp(&b.0));
        state
    }

    /// Restores buffers saved by [`Sgd::state`]; each must name a parameter of the same
    /// shape, and is copied onto that parameter's device.
    pub fn load_state(&mut self, state: Vec<(String, Tensor)>) -> Result<()> {
        let mut buffers = HashMap::new();
        for (name, saved) in state {
            if name == LossScale::STATE {
                self.load_loss_scale(&saved)?;
                continue;
            }
            let Some((_, p)) = self.params.iter().find(|(n, _)| *n == name) else {
                bail!("momentum buffer '{name}' belongs to no parameter of this network");
            };
            if saved.size() != p.size() || saved.kind() != p.kind() {
                bail!(
                    "momentum buffer '{name}' is {:?} {:?} where the parameter is {:?} {:?}",
                    saved.kind(),
                    saved.size(),
                    p.kind(),
                    p.size()
                );
            }
            buffers.insert(name, saved.to_device(p.device()).copy());
        }
        self.buffers = buffers;
        Ok(())
    }

    fn load_loss_scale(&mut self, saved: &Tensor) -> Result<()> {
        let v = Vec::<f64>::try_from(saved.to_kind(tch::Kind::Double).flatten(0, -1))?;
        let (Some(current), [scale, good]) = (self.loss_scale.as_mut(), v.as_slice()) else {
            bail!("the saved state has a loss scale, but this training does not scale its loss (or the value is malformed)");
        };
        if !(scale.is_finite() && *scale > 0.0 && *good >= 0.0) {
            bail!("the saved loss scale {scale} is not a positive number");
        }
        *current = LossScale {
            scale: *scale,
            good_steps: *good as u32,
        };
        Ok(())
    }
}

/// `a[i] += alpha * b[i]` for every i, in place, with one multi-tensor call
/// (`csrc/foreach.cpp`). The lists are of one length, their tensors of one kind and device.
fn foreach_add_(a: &mut [Tensor], b: &[Tensor], alpha: f64) {
    assert_eq!(a.len(), b.len(), "foreach lists of one length");
    let mut pa: Vec<*mut std::ffi::c_void> = a.iter_mut().map(|t| t.as_mut_ptr().cast()).collect();
    // The C++ side only reads `b`; it takes mutable pointers like every list.
    let mut pb: Vec<*mut std::ffi::c_void> =
        b.iter().map(|t| t.as_ptr().cast_mut().cast()).collect();
    // SAFETY: the pointers are live tch tensors (at::Tensor objects) for the whole call.
    unsafe {
        vog_foreach_add_(
            pa.as_mut_ptr(),
            pb.as_mut_ptr(),
            a.len() as std::ffi::c_int,
            alpha,
        )
    };
}

/// `a[i] *= s` for every i, in place, with one multi-tensor call.
fn foreach_mul_(a: &mut [Tensor], s: f64) {
    let mut pa: Vec<*mut std::ffi::c_void> = a.iter_mut().map(|t| t.as_mut_ptr().cast()).collect();
    // SAFETY: as in foreach_add_.
    unsafe { vog_foreach_mul_(pa.as_mut_ptr(), a.len() as std::ffi::c_int, s) };
}

extern "C" {
    // csrc/foreach.cpp
    fn vog_foreach_add_(
        a: *mut *mut std::ffi::c_void,
        b: *mut *mut std::ffi::c_void,
        n: std::ffi::c_int,
        alpha: f64,
    );
    fn vog_foreach_mul_(a: *mut *mut std::ffi::c_void, n: std::ffi::c_int, s: f64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn tensor(values: &[f32]) -> Tensor {
        Tensor::from_slice(values).set_requires_grad(true)
    }

    /// loss = sum(w * c) has gradient c, so every step is hand-computable.
    fn linear_step(sgd: &mut Sgd, w: &Tensor, c: &[f32], lr: f64) {
        let loss = (w * Tensor::from_slice(c)).sum(Kind::Float);
        sgd.backward_step(&loss, lr);
    }

    #[test]
    fn loss_scale_skips_overflowing_steps_and_unscales_the_rest() {
        let w = tensor(&[1.0, 2.0]);
        let cfg = SgdConfig {
            momentum: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        };
        let mut sgd = Sgd::over(vec![("w".into(), w.shallow_clone())], cfg).with_loss_scale();
        // 1e35 x 65536 overflows f32: no step, the scale halves.
        linear_step(&mut sgd, &w, &[1e35, 0.0], 0.1);
        assert_eq!(Vec::<f32>::try_from(&w).unwrap(), [1.0, 2.0]);
        assert_eq!(sgd.loss_scale().unwrap().scale, 32768.0);
        // A finite step uses the unscaled gradient: w = [1, 2] - 0.5 [1, 4] = [0.5, 0].
        linear_step(&mut sgd, &w, &[1.0, 4.0], 0.5);
        assert_eq!(Vec::<f32>::try_from(&w).unwrap(), [0.5, 0.0]);
        assert_eq!(
            sgd.loss_scale(),
            Some(LossScale {
                scale: 32768.0,
                good_steps: 1
            })
        );
        // The scale is saved and restored with the state.
        let state = sgd.state();
        let mut fresh = Sgd::over(vec![("w".into(), w.shallow_clone())], cfg).with_loss_scale();
        fresh.load_state(state).unwrap();
        assert_eq!(fresh.loss_scale(), sgd.loss_scale());
        let mut plain = Sgd::over(vec![("w".into(), w.shallow_clone())], cfg);
        assert!(plain.load_state(sgd.state()).is_err());
    }

    #[test]
    fn momentum_and_weight_decay_by_hand() {
        let w = tensor(&[1.0, -2.0]);
        let cfg = SgdConfig {
            momentum: 0.5,
            weight_decay: 0.1,
            nesterov: false,
        };
        let mut sgd = Sgd::over(vec![("w".into(), w.shallow_clone())], cfg);
        // Step 1: d = c + 0.1 w = [1.1, -0.2]; buf = d; w = [1, -2] - 0.1 d = [0.89, -1.98].
        linear_step(&mut sgd, &w, &[1.0, 0.0], 0.1);
        let got = Vec::<f32>::try_from(&w).unwrap();
        assert!(
            (got[0] - 0.89).abs() < 1e-6 && (got[1] + 1.98).abs() < 1e-6,
            "{got:?}"
        );
        // Step 2: d = [1.089, -0.198]; buf = 0.5 [1.1, -0.2] + d = [1.639, -0.298];
        // w = [0.89, -1.98] - 0.1 buf = [0.7261, -1.9502].
        linear_step(&mut sgd, &w, &[1.0, 0.0], 0.1);
        let got = Vec::<f32>::try_from(&w).unwrap();
        assert!(
            (got[0] - 0.7261).abs() < 1e-6 && (got[1] + 1.9502).abs() < 1e-6,
            "{got:?}"
        );
    }

    #[test]
    fn nesterov_by_hand() {
        let w = tensor(&[0.0]);
        let cfg = SgdConfig {
            momentum: 0.9,
            weight_decay: 0.0,
            nesterov: true,
        };
        let mut sgd = Sgd::over(vec![("w".into(), w.shallow_clone())], cfg);
        // d = 1, buf = 1, step = d + 0.9 buf = 1.9; then buf = 1.9, step = 1 + 1.71 = 2.71.
        linear_step(&mut sgd, &w, &[1.0], 1.0);
        linear_step(&mut sgd, &w, &[1.0], 1.0);
        let got = f64::try_from(&w.sum(Kind::Double)).unwrap();
        assert!((got + 4.61).abs() < 1e-6, "{got}");
    }

    #[test]
    fn saved_state_continues_identically() {
        let cfg = SgdConfig {
            momentum: 0.9,
            weight_decay: 5e-4,
            nesterov: false,
        };
        let start = [0.3f32, -0.7, 1.2];
        let w = tensor(&start);
        let mut sgd = Sgd::over(vec![("w".into(), w.shallow_clone())], cfg);
        let grads = [[1.0f32, 2.0, -1.0], [0.5, -0.5, 0.25], [-1.0, 0.0, 3.0]];
        for c in &grads[..2] {
            linear_step(&mut sgd, &w, c, 0.1);
        }
        // A fresh optimizer over a copy of the weights, given the saved buffers.
        let w2 = w.detach().copy().set_requires_grad(true);
        let mut resumed = Sgd::over(vec![("w".into(), w2.shallow_clone())], cfg);
        resumed.load_state(sgd.state()).unwrap();
        linear_step(&mut sgd, &w, &grads[2], 0.1);
        linear_step(&mut resumed, &w2, &grads[2], 0.1);
        assert_eq!(w, w2);
        let wrong = vec![(
            "w".to_string(),
            Tensor::zeros([2], (Kind::Float, Device::Cpu)),
        )];
        assert!(resumed.load_state(wrong).is_err());
    }
}
