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

impl ModuleT for ResNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = x.apply(&self.conv1).apply_t(&self.bn1, train).relu();
        for block in &self.blocks {
            h = block.forward_t(&h, train);
        }
        h.adaptive_avg_pool2d([1, 1]).flatten(1, -1).apply(&self.fc)
    }
}

/// The floating-point format the network computes in.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats throughout.
    #[default]
    Fp32,
    /// bfloat16 weights and activations (8-bit mantissa, fp32's range).
    Bf16,
    /// IEEE half precision (10-bit mantissa, range up to 65504).
    Fp16,
}

impl Precision {
    pub fn kind(self) -> tch::Kind {
        match self {
            Precision::Fp32 => tch::Kind::Float,
            Precision::Bf16 => tch::Kind::BFloat16,
            Precision::Fp16 => tch::Kind::Half,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        }
    }

    /// Runs `f` under libtorch's autocast on `device`'s kind in this precision, as
    /// `torch.autocast(device_type, dtype)` does: convolutions and matrix products in the
    /// low precision, reductions, the loss and BatchNorm statistics in fp32, weights kept in
    /// fp32. Fp32 runs `f` unchanged.
    pub fn autocast<T>(self, device: tch::Device, f: impl FnOnce() -> T) -> T {
        let dtype = match self {
            Precision::Fp32 => return f(),
            Precision::Bf16 => 0,
            Precision::Fp16 => 1,
        };
        let cuda = device.is_cuda() as std::ffi::c_int;
        let (mut enabled, mut previous) = (0, 0);
        // SAFETY: plain values in, two out-pointers to live locals.
        unsafe { vog_autocast_enter(cuda, dtype, &mut enabled, &mut previous) };
        let _restore = AutocastExit {
            cuda,
            enabled,
            previous,
        };
        f()
    }
}

extern "C" {
    // csrc/autocast.cpp
    fn vog_autocast_enter(
        cuda: std::ffi::c_int,
        dtype: std::ffi::c_int,
        prev_enabled: *mut std::ffi::c_int,
        prev_dtype: *mut std::ffi::c_int,
    );
    fn vog_autocast_exit(
        cuda: std::ffi::c_int,
        prev_enabled: std::ffi::c_int,
        prev_dtype: std::ffi::c_int,
    );
}

/// Leaves autocast (restoring the state before it) when dropped, also on a panic.
struct AutocastExit {
    cuda: std::ffi::c_int,
    enabled: std::ffi::c_int,
    previous: std::ffi::c_int,
}

impl Drop for AutocastExit {
    fn drop(&mut self) {
        // SAFETY: plain values; pairs with the enter above.
        unsafe { vog_autocast_exit(self.cuda, self.enabled, self.previous) };
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
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
    fn autocast_casts_matmuls_inside_and_restores_outside() {
        let a = Tensor::ones([2, 3], (Kind::Float, Device::Cpu));
        let b = Tensor::ones([3, 2], (Kind::Float, Device::Cpu));
        let inside = Precision::Bf16.autocast(Device::Cpu, || {
            // Nested autocast keeps the outer one's state on exit.
            let half = Precision::Fp16.autocast(Device::Cpu, || a.matmul(&b).kind());
            (half, a.matmul(&b).kind(), a.sum(Kind::Float).kind())
        });
        assert_eq!(inside, (Kind::Half, Kind::BFloat16, Kind::Float));
        assert_eq!(a.matmul(&b).kind(), Kind::Float, "autocast is off again");
        assert_eq!(
            Precision::Fp32.autocast(Device::Cpu, || a.matmul(&b).kind()),
            Kind::Float
        );
    }

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
