//! The floating-point format of the forward and backward passes, and libtorch's autocast
//! (`csrc/autocast.cpp`), which runs training in bf16 or fp16 as `torch.autocast` does.
/// The floating-point format the network computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
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

    /// Puts the variables of `vs` in this format (fp32 leaves them as they are).
    pub fn cast(self, vs: &mut tch::nn::VarStore) {
        if self != Precision::Fp32 {
            vs.set_kind(self.kind());
        }
    }

    /// Puts a TorchScript module on `device` in this format (fp32 leaves its format alone).
    pub fn cast_module(self, module: &mut tch::CModule, device: tch::Device) {
        if self != Precision::Fp32 {
            module.to(device, self.kind(), false);
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

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

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
}
