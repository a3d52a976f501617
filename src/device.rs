//! Device names (`auto|cpu|cuda|cuda:N`), resolved once where they enter the program and
//! checked against what libtorch can see; afterwards only `tch::Device` travels.
use tch::{Cuda, Device};
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum DeviceError {
    #[error("unknown device '{0}' (expected auto, cpu, cuda or cuda:N)")]
    Unknown(String),
    #[error("'{0}': CUDA is not available (libtorch sees no GPU on this machine)")]
    NoCuda(String),
    #[error("'{asked}': there is no CUDA device {index} (libtorch sees {count})")]
    NoSuchGpu {
        asked: String,
        index: usize,
        count: usize,
    },
}

/// Memory the OS could give this process now (`MemAvailable` of `/proc/meminfo`), for
/// refusing work that cannot fit before allocating it; `None` where unknown.
pub fn available_host_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Set by tests to a path that stands for an NVIDIA device node (`/dev/nvidia0`), so that
/// a machine without a GPU can check what vog says when a GPU is visible but unusable.
pub const TEST_NVIDIA_NODE_ENV: &str = "VOG_TEST_NVIDIA_NODE";

/// Why libtorch cannot use a GPU this machine shows (an NVIDIA device node exists), where
/// it sees none; `None` where it sees one, or no GPU is shown.
pub fn unusable_gpu() -> Option<String> {
    let node = std::env::var_os(TEST_NVIDIA_NODE_ENV)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/dev/nvidia0".into());
    if !node.exists() || Cuda::device_count() > 0 {
        return None;
    }
    Some(if tch::utils::has_cuda() {
        format!(
            "{} exists but libtorch sees no GPU: the NVIDIA driver may be older than CUDA 13.0 \
             needs (nvidia-smi's \"CUDA Version\" must read 13.0 or more), the card too old for \
             CUDA 13, or CUDA_VISIBLE_DEVICES empty",
            node.display()
        )
    } else {
        format!(
            "{} exists but this libtorch was built without CUDA (a CPU-only torch wheel); \
             build vog against torch==2.11.0 with CUDA 13",
            node.display()
        )
    })
}

/// What a run computes on, for the line printed before it starts: `cuda:0`, or `cpu (N
/// threads)`.
pub fn describe(device: Device) -> String {
    match device {
        Device::Cpu => format!("cpu ({} threads)", tch::get_num_threads()),
        d => name(d),
    }
}

/// Free and total bytes of memory of the CUDA device `device` now, as `cudaMemGetInfo` of
/// the CUDA runtime libtorch loaded says; `None` on the CPU, or where no runtime is loaded
/// or it cannot say (no GPU).
pub fn gpu_memory(device: Device) -> Option<(u64, u64)> {
    let Device::Cuda(index) = device else {
        return None;
    };
    type SetDevice = unsafe extern "C" fn(std::ffi::c_int) -> std::ffi::c_int;
    type MemGetInfo = unsafe extern "C" fn(*mut usize, *mut usize) -> std::ffi::c_int;
    // SAFETY: only a library already loaded is opened (RTLD_NOLOAD), and the two symbols
    // are called with the CUDA runtime's signatures and live out-pointers.
    unsafe {
        let lib = ["libcudart.so.13", "libcudart.so.12", "libcudart.so"]
            .iter()
            .find_map(|name| {
                let name = std::ffi::CString::new(*name).ok()?;
                let h = libc::dlopen(name.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD);
                (!h.is_null()).then_some(h)
            })?;
        let symbol = |name: &str| {
            let name = std::ffi::CString::new(name).ok()?;
            let f = libc::dlsym(lib, name.as_ptr());
            (!f.is_null()).then_some(f)
        };
        let set: SetDevice = std::mem::transmute(symbol("cudaSetDevice")?);
        let info: MemGetInfo = std::mem::transmute(symbol("cudaMemGetInfo")?);
        let (mut free, mut total) = (0usize, 0usize);
        let ok = set(index as std::ffi::c_int) == 0 && info(&mut free, &mut total) == 0;
        ok.then_some((free as u64, total as u64))
    }
}

/// Resolves a device name; `auto` picks the first GPU when there is one.
pub fn parse(name: &str) -> Result<Device, DeviceError> {
    resolve(name, Cuda::device_count().max(0) as usize)
}

/// Keeps freed host memory in the process (see [`keep_host_memory`]), computes fp32 in
/// fp32 (libtorch lets cuDNN use TF32 for fp32 convolutions unless told not to, which
/// leaves about 3 significant digits), and on CUDA either lets cuDNN time its convolution
/// algorithms on the first batch of each shape and keep the fastest (PyTorch's
/// `cudnn.benchmark = True`: fast, but the algorithms chosen may differ between runs), or,
/// `deterministic`, uses deterministic algorithms only, so that a run repeats bit for bit.
pub fn tune_for(device: Device, deterministic: bool) {
    keep_host_memory();
    let tf32 = std::env::var_os(TF32_ENV).is_some_and(|v| v == "1");
    // SAFETY: plain values; the switches are libtorch's global settings.
    unsafe { vog_set_tf32(tf32 as std::ffi::c_int) };
    if deterministic {
        // cuBLAS repeats its results only with a fixed workspace, set before its first use
        // (PyTorch's reproducibility notes); a value the user set is kept.
        if std::env::var_os("CUBLAS_WORKSPACE_CONFIG").is_none() {
            std::env::set_var("CUBLAS_WORKSPACE_CONFIG", ":4096:8");
        }
        unsafe { vog_set_deterministic(1) };
    } else if device.is_cuda() {
        Cuda::cudnn_set_benchmark(true);
    }
}

/// `VOG_TF32=1` lets fp32 convolutions and matrix products on CUDA use TF32 (faster on
/// tensor cores, about 3 significant digits), for measuring what TF32 changes.
pub const TF32_ENV: &str = "VOG_TF32";

/// Whether fp32 convolutions on CUDA may use TF32 now (false after [`tune_for`]).
#[cfg(test)]
fn tf32_convolutions() -> bool {
    // SAFETY: reads a flag.
    unsafe { vog_tf32_convolutions() != 0 }
}

extern "C" {
    // csrc/backends.cpp
    fn vog_set_deterministic(on: std::ffi::c_int);
    fn vog_set_tf32(on: std::ffi::c_int);
    #[cfg(test)]
    fn vog_tf32_convolutions() -> std::ffi::c_int;
}

/// Tensors up to this size come from malloc's heap rather than a fresh `mmap` each.
const MMAP_THRESHOLD: usize = 512 << 20;
/// Free memory at the top of the heap is given back to the OS only beyond this.
const TRIM_THRESHOLD: usize = 1 << 30;

/// Stops glibc's malloc from giving the activations of each batch back to the OS only to
/// fault the same pages in again (zeroed) on the next: by default every allocation over
/// 32 MiB is its own `mmap`, and the heap top is trimmed at 64 MiB, which cost a
/// CPU ResNet-18 step at width 64 about 20% of its time in page faults (22.9 M minor faults
/// in 90 s of `vog bench`, 0.5 M with these settings). Peak resident memory grows by about
/// the largest batch's working set. Left alone where the user set `MALLOC_MMAP_THRESHOLD_`,
/// `MALLOC_TRIM_THRESHOLD_` or `GLIBC_TUNABLES`, and on other C libraries.
pub fn keep_host_memory() {
    let user_set = [
        "MALLOC_MMAP_THRESHOLD_",
        "MALLOC_TRIM_THRESHOLD_",
        "GLIBC_TUNABLES",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some());
    if !user_set {
        set_malloc_thresholds(MMAP_THRESHOLD, TRIM_THRESHOLD);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_malloc_thresholds(mmap: usize, trim: usize) {
    // SAFETY: mallopt only changes malloc's tuning parameters; both values fit a c_int.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, mmap as libc::c_int);
        libc::mallopt(libc::M_TRIM_THRESHOLD, trim as libc::c_int);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_malloc_thresholds(_mmap: usize, _trim: usize) {}

/// Like [`parse`], given how many CUDA devices there are.
pub fn resolve(name: &str, cuda_count: usize) -> Result<Device, DeviceError> {
    let name = name.trim();
    let index = match name {
        "auto" if cuda_count > 0 => return Ok(Device::Cuda(0)),
        "auto" | "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        _ => name
            .strip_prefix("cuda:")
            .and_then(|i| i.parse::<usize>().ok())
            .ok_or_else(|| DeviceError::Unknown(name.to_string()))?,
    };
    if cuda_count == 0 {
        return Err(DeviceError::NoCuda(name.to_string()));
    }
    if index >= cuda_count {
        return Err(DeviceError::NoSuchGpu {
            asked: name.to_string(),
            index,
            count: cuda_count,
        });
    }
    Ok(Device::Cuda(index))
}

/// The device a recorded name (`cpu`, `cuda`, `cuda:N`) stands for, without checking that
/// it exists here (a run trained on a GPU is read on machines without one).
pub fn from_name(name: &str) -> Result<Device, DeviceError> {
    match name.trim() {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        other => other
            .strip_prefix("cuda:")
            .and_then(|i| i.parse::<usize>().ok())
            .map(Device::Cuda)
            .ok_or_else(|| DeviceError::Unknown(other.to_string())),
    }
}

/// Serializes a `tch::Device` as its [`name`] (`#[serde(with = "crate::device::by_name")]`).
pub mod by_name {
    use serde::{Deserialize, Deserializer, Serializer};
    use tch::Device;

    pub fn serialize<S: Serializer>(d: &Device, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::name(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Device, D::Error> {
        let text = String::deserialize(d)?;
        super::from_name(&text).map_err(serde::de::Error::custom)
    }
}

/// A device's name as `--device` spells it.
pub fn name(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        Device::Cpu => "cpu".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_gpu_memory_where_there_is_no_gpu() {
        assert_eq!(gpu_memory(Device::Cpu), None);
        if Cuda::device_count() == 0 {
            assert_eq!(gpu_memory(Device::Cuda(0)), None);
        }
    }

    #[test]
    fn fp32_means_fp32() {
        tune_for(Device::Cpu, false);
        assert!(!tf32_convolutions(), "TF32 left on for fp32 convolutions");
    }

    #[test]
    fn resolves_names() {
        assert_eq!(resolve("auto", 0), Ok(Device::Cpu));
        assert_eq!(resolve("auto", 2), Ok(Device::Cuda(0)));
        assert_eq!(resolve("cpu", 2), Ok(Device::Cpu));
        assert_eq!(resolve("cuda", 1), Ok(Device::Cuda(0)));
        assert_eq!(resolve("cuda:1", 2), Ok(Device::Cuda(1)));
        assert_eq!(name(Device::Cuda(1)), "cuda:1");
        assert_eq!(from_name("cuda:3"), Ok(Device::Cuda(3)));
        assert_eq!(from_name("cpu"), Ok(Device::Cpu));
        assert!(from_name("auto").is_err());
    }

    #[test]
    fn rejects_unknown_and_missing() {
        assert_eq!(resolve("tpu", 1), Err(DeviceError::Unknown("tpu".into())));
        assert_eq!(
            resolve("cuda:x", 1),
            Err(DeviceError::Unknown("cuda:x".into()))
        );
        assert_eq!(resolve("cuda", 0), Err(DeviceError::NoCuda("cuda".into())));
        assert!(matches!(
            resolve("cuda:3", 2),
            Err(DeviceError::NoSuchGpu { index: 3, .. })
        ));
    }
}
