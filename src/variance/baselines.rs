//! Difficulty scores people already use, from the forward passes VoG scoring runs anyway
//! (eval mode, at each selected checkpoint), all against the label trained with:
//!
//! - loss: cross-entropy at the last checkpoint;
//! - EL2N (Paul et al. 2021): the L2 norm of softmax minus one-hot, averaged over the
//!   checkpoints;
//! - prob: the softmax probability of the label at the last checkpoint.
use tch::{Kind, Tensor};

/// (loss, EL2N, prob) per example from the logits of each checkpoint (each B x classes, in
/// epoch order) and `labels` (B, i64); each (B,) f64.
pub fn checkpoint_scores(logits: &[Tensor], labels: &Tensor) -> (Tensor, Tensor, Tensor) {
    let classes = logits[0].size()[1];
    let one_hot = labels.one_hot(classes).to_kind(Kind::Double);
    let el2n = logits
        .iter()
        .map(|l| {
            (l.to_kind(Kind::Double).softmax(1, Kind::Double) - &one_hot)
                .square()
                .sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
                .sqrt()
        })
        .reduce(|a, b| a + b)
        .expect("at least one checkpoint")
        / logits.len() as f64;
    let last = logits[logits.len() - 1].to_kind(Kind::Double);
    let log_p = last
        .log_softmax(1, Kind::Double)
        .gather(1, &labels.unsqueeze(1), false)
        .squeeze_dim(1);
    (-&log_p, el2n, log_p.exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_hand() {
        // Two classes, one example with label 0. Checkpoint 1: logits (0, 0) -> p = (1/2, 1/2),
        // softmax - onehot = (-1/2, 1/2), norm sqrt(1/2). Checkpoint 2: logits (ln 3, 0) ->
        // p = (3/4, 1/4), difference (-1/4, 1/4), norm sqrt(1/8).
        let l1 = Tensor::from_slice(&[0.0f32, 0.0]).view([1, 2]);
        let l2 = Tensor::from_slice(&[3f32.ln(), 0.0]).view([1, 2]);
        let y = Tensor::from_slice(&[0i64]);
        let (loss, el2n, prob) = checkpoint_scores(&[l1, l2], &y);
        let v = |t: Tensor| t.double_value(&[0]);
        assert!((v(loss) - (4.0f64 / 3.0).ln()).abs() < 1e-6);
        assert!((v(el2n) - (0.5f64.sqrt() + 0.125f64.sqrt()) / 2.0).abs() < 1e-6);
        assert!((v(prob) - 0.75).abs() < 1e-6);
    }
}
