//! ResNet-18, CIFAR variant (He et al. 2016, as used by Agarwal & Hooker): a 3x3 stride-1
//! stem without max-pool, BasicBlocks [2, 2, 2, 2] at W-2W-4W-8W channels, global average
//! pool and a linear head. Parameter and buffer names follow torchvision (`conv1.weight`,
//! `layer1.0.bn1.running_mean`, `layer2.0.downsample.0.weight`, `fc.bias`), so a checkpoint
//! loads into PyTorch as a state_dict.
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// Blocks per stage.
const STAGES: [usize; 4] = [2, 2, 2, 2];

fn conv(p: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        stride,
        padding: k / 2,
        bias: false,
        ..Default::default()
    };
    nn::conv2d(p, c_in, c_out, k, cfg)
}

#[derive(Debug)]
struct BasicBlock {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    conv2: nn::Conv2D,
    bn2: nn::BatchNorm,
    downsample: Option<(nn::Conv2D, nn::BatchNorm)>,
}

impl BasicBlock {
    fn new(p: &nn::Path, c_in: i64, c_out: i64, stride: i64) -> Self {
        let downsample = (stride != 1 || c_in != c_out).then(|| {
            let d = p / "downsample";
            (
                conv(&d / "0", c_in, c_out, 1, stride),
                nn::batch_norm2d(&d / "1", c_out, Default::default()),
            )
        });
        BasicBlock {
            conv1: conv(p / "conv1", c_in, c_out, 3, stride),
            bn1: nn::batch_norm2d(p / "bn1", c_out, Default::default()),
            conv2: conv(p / "conv2", c_out, c_out, 3, 1),
            bn2: nn::batch_norm2d(p / "bn2", c_out, Default::default()),
            downsample,
        }
    }
}

impl ModuleT for BasicBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let y = x
            .apply(&self.conv1)
            .apply_t(&self.bn1, train)
            .relu()
            .apply(&self.conv2)
            .apply_t(&self.bn2, train);
        let shortcut = match &self.downsample {
            Some((c, bn)) => x.apply(c).apply_t(bn, train),
            None => x.shallow_clone(),
        };
        (y + shortcut).relu()
    }
}

/// The CIFAR ResNet-18. Input: NCHW f32, normalized; output: N x classes logits.
#[derive(Debug)]
pub struct ResNet {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    blocks: Vec<BasicBlock>,
    fc: nn::Linear,
}

impl ResNet {
    /// Builds the network in `vs` with base width `width` (64 = the paper's network).
    pub fn new(vs: &nn::Path, num_classes: i64, width: i64) -> Self {
        let mut blocks = Vec::new();
        let mut c_in = width;
        for (stage, &n) in STAGES.iter().enumerate() {
            let c_out = width << stage;
            let layer = vs / format!("layer{}", stage + 1);
            for b in 0..n {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                blocks.push(BasicBlock::new(
                    &(&layer / b.to_string()),
                    c_in,
                    c_out,
                    stride,
                ));
                c_in = c_out;
            }
        }
        ResNet {
            conv1: conv(vs / "conv1", 3, width, 3, 1),
            bn1: nn::batch_norm2d(vs / "bn1", width, Default::default()),
            blocks,
            fc: nn::linear(vs / "fc", c_in, num_classes, Default::default()),
        }
    }
}

impl ResNet {
    /// The penultimate layer: `x` NCHW f32, normalized; returns `[N, 8 * width]` f32, the
    /// globally pooled activations the linear head reads.
    pub fn features_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = x.apply(&self.conv1).apply_t(&self.bn1, train).relu();
        for block in &self.blocks {
            h = block.forward_t(&h, train);
        }
        h.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }
}

impl ModuleT for ResNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.features_t(x, train).apply(&self.fc)
    }
}

/// The number of trainable parameters of [`ResNet::new`]`(_, num_classes, width)`, computed
/// without building it (to refuse a network that cannot fit before allocating it).
pub fn parameters_for(num_classes: u64, width: u64) -> u128 {
    let (classes, w) = (num_classes as u128, width as u128);
    let conv = |c_in: u128, c_out: u128, k: u128| c_in * c_out * k * k;
    let bn = |c: u128| 2 * c;
    let mut total = conv(3, w, 3) + bn(w);
    let mut c_in = w;
    for (stage, &n) in STAGES.iter().enumerate() {
        let c_out = w << stage;
        for b in 0..n {
            let downsample = stage > 0 && b == 0 || c_in != c_out;
            total += conv(c_in, c_out, 3) + bn(c_out) + conv(c_out, c_out, 3) + bn(c_out);
            if downsample {
                total += conv(c_in, c_out, 1) + bn(c_out);
            }
            c_in = c_out;
        }
    }
    total + c_in * classes + classes
}

/// Number of trainable parameters in `vs`.
pub fn parameter_count(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(Tensor::numel)
        .sum::<usize>() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn paper_network_has_torchvision_size_and_names() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _net = ResNet::new(&vs.root(), 10, 64);
        assert_eq!(parameter_count(&vs), 11_173_962);
        let names = vs.variables();
        for n in [
            "conv1.weight",
            "bn1.running_mean",
            "layer1.0.bn1.running_var",
            "layer2.0.downsample.0.weight",
            "layer4.1.conv2.weight",
            "fc.weight",
            "fc.bias",
        ] {
            assert!(names.contains_key(n), "missing {n}");
        }
        assert!(!names.contains_key("layer1.0.downsample.0.weight"));
    }

    #[test]
    fn parameter_formula_matches_the_built_network() {
        for (classes, width) in [(10, 64), (100, 4), (3, 1)] {
            let vs = nn::VarStore::new(Device::Cpu);
            let _net = ResNet::new(&vs.root(), classes, width);
            assert_eq!(
                parameters_for(classes as u64, width as u64),
                parameter_count(&vs) as u128,
                "{classes} classes, width {width}"
            );
        }
    }

    #[test]
    fn output_shape() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = ResNet::new(&vs.root(), 7, 4);
        let x = Tensor::randn([5, 3, 32, 32], (Kind::Float, Device::Cpu));
        assert_eq!(net.forward_t(&x, false).size(), vec![5, 7]);
        assert_eq!(net.forward_t(&x, true).size(), vec![5, 7]);
    }
}
