//! Per-example input gradients of a batch in one backward pass.
//!
//! In eval mode (BatchNorm running statistics, no dropout) every example's output depends
//! on its own input only, so the gradient of the *sum* of the per-example targets with
//! respect to the batch holds each example's own gradient. That is not true in training
//! mode, where BatchNorm mixes the batch; callers must pass `train = false` models.
use super::{Channels, GradNorm, Target};
use tch::nn::ModuleT;
use tch::{Kind, Tensor};

/// Per-example value of `target` from `logits` (B x classes) and `labels` (B, i64): (B,).
pub fn target_values(logits: &Tensor, labels: &Tensor, target: Target) -> Tensor {
    let idx = labels.unsqueeze(1);
    let pick = |t: &Tensor| t.gather(1, &idx, false).squeeze_dim(1);
    match target {
        Target::Logit => pick(logits),
        Target::Prob => pick(&logits.softmax(1, Kind::Float)),
        Target::Logprob => pick(&logits.log_softmax(1, Kind::Float)),
        Target::Margin => {
            let classes = logits.size()[1];
            let own = labels.one_hot(classes).to_kind(Kind::Bool);
            let others = logits.masked_fill(&own, f64::NEG_INFINITY);
            pick(logits) - others.amax([1i64].as_slice(), false)
        }
    }
}

/// Input gradients of every target for one batch, from a single forward pass.
///
/// `x`: NCHW f32, normalized; `labels`: (B,) i64. Returns one NCHW f32 gradient per
/// target (in `targets` order) and the detached logits (B x classes).
pub fn input_gradients(
    model: &dyn ModuleT,
    x: &Tensor,
    labels: &Tensor,
    targets: &[Target],
) -> (Vec<Tensor>, Tensor) {
    let x = x.detach().set_requires_grad(true);
    let logits = model.forward_t(&x, false);
    let grads = targets
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let total = target_values(&logits, labels, t).sum(Kind::Float);
            let keep_graph = i + 1 < targets.len();
            Tensor::run_backward(&[total], &[&x], keep_graph, false).remove(0)
        })
        .collect();
    (grads, logits.detach())
}

/// Turns NCHW gradients into per-example pixel maps (B x N, f64) as the variant defines.
pub fn pixel_map(grad: &Tensor, channels: Channels, grad_norm: GradNorm) -> Tensor {
    let g = grad.to_kind(Kind::Double);
    let map = match channels {
        Channels::Mean => g
            .mean_dim([1i64].as_slice(), false, Kind::Double)
            .flatten(1, -1),
        Channels::All => g.flatten(1, -1),
    };
    match grad_norm {
        GradNorm::None => map,
        GradNorm::Unit => {
            let norm = map
                .square()
                .sum_dim_intlist([1i64].as_slice(), true, Kind::Double)
                .sqrt();
            // An all-zero map stays zero instead of becoming NaN.
            &map / norm.clamp_min(1e-300)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device};

    fn logits() -> (Tensor, Tensor) {
        let l = Tensor::from_slice(&[1.0f32, 2.0, 0.5, 3.0, -1.0, 0.0]).view([2, 3]);
        (l, Tensor::from_slice(&[2i64, 0]))
    }

    #[test]
    fn targets_by_hand() {
        let (l, y) = logits();
        let v = |t| Vec::<f32>::try_from(target_values(&l, &y, t)).unwrap();
        assert_eq!(v(Target::Logit), vec![0.5, 3.0]);
        assert_eq!(v(Target::Margin), vec![-1.5, 3.0]);
        let z0 = 1f32.exp() + 2f32.exp() + 0.5f32.exp();
        let p = v(Target::Prob);
        assert!((p[0] - 0.5f32.exp() / z0).abs() < 1e-6);
        let lp = v(Target::Logprob);
        assert!((lp[0] - (0.5 - z0.ln())).abs() < 1e-6);
    }

    #[test]
    fn batched_gradients_equal_one_at_a_time_in_eval_mode() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = crate::model::ResNet::new(&vs.root(), 5, 4);
        let x = Tensor::randn([6, 3, 32, 32], (Kind::Float, Device::Cpu));
        // Move the BatchNorm statistics off their init so eval mode is non-trivial.
        let _ = net.forward_t(&x, true);
        let y = Tensor::from_slice(&[0i64, 1, 2, 3, 4, 0]);
        let targets = [Target::Logit, Target::Prob, Target::Margin];
        let (batched, _) = input_gradients(&net, &x, &y, &targets);
        for i in 0..6 {
            let xi = x.narrow(0, i, 1);
            let yi = y.narrow(0, i, 1);
            let (single, _) = input_gradients(&net, &xi, &yi, &targets);
            for (b, s) in batched.iter().zip(&single) {
                let diff = (b.narrow(0, i, 1) - s).abs().max().double_value(&[]);
                let scale = s.abs().max().double_value(&[]);
                assert!(
                    diff <= 1e-5 * scale.max(1e-12),
                    "example {i}: {diff} vs {scale}"
                );
            }
        }
    }

    #[test]
    fn pixel_maps() {
        // One example, 2 channels of 1x2 pixels.
        let g = Tensor::from_slice(&[1.0f32, 3.0, 3.0, 1.0]).view([1, 2, 1, 2]);
        let v = |c, n| Vec::<f64>::try_from(pixel_map(&g, c, n).flatten(0, -1)).unwrap();
        assert_eq!(v(Channels::Mean, GradNorm::None), vec![2.0, 2.0]);
        assert_eq!(v(Channels::All, GradNorm::None), vec![1.0, 3.0, 3.0, 1.0]);
        let u = v(Channels::Mean, GradNorm::Unit);
        assert!((u[0] - 0.5f64.sqrt()).abs() < 1e-12);
        let zero = Tensor::zeros([1, 1, 1, 2], (Kind::Float, Device::Cpu));
        let z = pixel_map(&zero, Channels::All, GradNorm::Unit);
        assert_eq!(
            Vec::<f64>::try_from(z.flatten(0, -1)).unwrap(),
            vec![0.0, 0.0]
        );
    }
}
