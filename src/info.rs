//! Versions of the tool and of the libtorch it runs against, and what devices it sees
//! (`vog info`; also recorded in every run and score file).
use crate::precision::Precision;
use serde::{Deserialize, Serialize};
use std::fmt;
use tch::{Cuda, Device};

/// The versions an output was produced with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versions {
    pub vog: String,
    pub tch: String,
    /// The libtorch loaded at run time (from its `version.py`), else the one built against.
    pub libtorch: String,
}

impl Versions {
    pub fn current() -> Self {
        Versions {
            vog: env!("CARGO_PKG_VERSION").to_string(),
            tch: env!("VOG_TCH_VERSION").to_string(),
            libtorch: loaded_libtorch()
                .map(|(v, _)| v)
                .unwrap_or_else(|| env!("VOG_BUILD_LIBTORCH_VERSION").to_string()),
        }
    }
}

/// Version and folder of the libtorch this process has loaded (Linux: /proc/self/maps).
fn loaded_libtorch() -> Option<(String, String)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let lib = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so"))?;
    let lib_dir = std::path::Path::new(lib).parent()?;
    let text = std::fs::read_to_string(lib_dir.parent()?.join("version.py")).ok()?;
    let version = text.lines().find_map(|l| {
        l.strip_prefix("__version__")?
            .split('\'')
            .nth(1)
            .map(String::from)
    })?;
    Some((version, lib_dir.display().to_string()))
}

/// What `vog info` reports.
#[derive(Debug, Serialize)]
pub struct Info {
    pub versions: Versions,
    pub built_against: String,
    pub libtorch_dir: Option<String>,
    pub cuda_available: bool,
    pub cuda_devices: i64,
    pub cudnn_available: bool,
    pub cpu_threads: i32,
    pub devices: Vec<String>,
}

impl Info {
    pub fn gather() -> Self {
        let cuda_devices = Cuda::device_count();
        let mut devices = vec!["cpu".to_string()];
        devices.extend((0..cuda_devices).map(|i| format!("cuda:{i}")));
        Info {
            versions: Versions::current(),
            built_against: env!("VOG_BUILD_LIBTORCH_VERSION").to_string(),
            libtorch_dir: loaded_libtorch().map(|(_, d)| d),
            cuda_available: Cuda::is_available(),
            cuda_devices,
            cudnn_available: Cuda::cudnn_is_available(),
            cpu_threads: tch::get_num_threads(),
            devices,
        }
    }
}

impl fmt::Display for Info {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        writeln!(f, "vog       {}", self.versions.vog)?;
        writeln!(f, "tch       {}", self.versions.tch)?;
        writeln!(
            f,
            "libtorch  {} (built against {})",
            self.versions.libtorch, self.built_against
        )?;
        if let Some(dir) = &self.libtorch_dir {
            writeln!(f, "loaded    {dir}")?;
        }
        writeln!(
            f,
            "cuda      {} ({} device(s))",
            yes_no(self.cuda_available),
            self.cuda_devices
        )?;
        writeln!(f, "cudnn     {}", yes_no(self.cudnn_available))?;
        writeln!(f, "threads   {}", self.cpu_threads)?;
        write!(f, "devices   {}", self.devices.join(", "))
    }
}

/// The processor speed figures depend on: its model and the instructions that make bf16
/// fast or slow on a CPU (bf16 scoring was 1.8x fp32 on an AMD EPYC with AVX512-BF16 and
/// 0.73-0.97x on an Intel Xeon with AVX512-BF16 but no AMX).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cpu {
    /// `model name` of `/proc/cpuinfo` ("unknown" elsewhere).
    pub model: String,
    /// Intel AMX tiles for bf16 matrix products (`amx_bf16`).
    pub amx_bf16: bool,
    /// AVX-512 bf16 dot products (`avx512_bf16`).
    pub avx512_bf16: bool,
}

/// Set by tests to a file read in place of `/proc/cpuinfo`, so that a machine with bf16
/// instructions can check what vog says on one without.
pub const TEST_CPUINFO_ENV: &str = "VOG_TEST_CPUINFO";

impl Cpu {
    /// This machine's processor, from `/proc/cpuinfo` where there is one.
    pub fn detect() -> Self {
        let path = std::env::var_os(TEST_CPUINFO_ENV).unwrap_or_else(|| "/proc/cpuinfo".into());
        Self::parse(&std::fs::read_to_string(path).unwrap_or_default())
    }

    /// Whether it has instructions for bf16 arithmetic (AMX tiles or AVX-512 dot products);
    /// without them libtorch emulates bf16 in fp32 and converts every value twice.
    pub fn has_bf16(&self) -> bool {
        self.amx_bf16 || self.avx512_bf16
    }

    /// From the text of `/proc/cpuinfo` (its first processor).
    pub fn parse(cpuinfo: &str) -> Self {
        let field = |name: &str| {
            cpuinfo.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == name).then(|| v.trim().to_string())
            })
        };
        let flags = field("flags").unwrap_or_default();
        let has = |f: &str| flags.split_whitespace().any(|x| x == f);
        Cpu {
            model: field("model name").unwrap_or_else(|| "unknown".into()),
            amx_bf16: has("amx_bf16"),
            avx512_bf16: has("avx512_bf16"),
        }
    }
}

impl fmt::Display for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes = |b: bool| if b { "yes" } else { "no" };
        write!(
            f,
            "{} (AMX-BF16: {}, AVX512-BF16: {})",
            self.model,
            yes(self.amx_bf16),
            yes(self.avx512_bf16)
        )
    }
}

/// The warning for computing in `precision` on `device` where it is known to be slow:
/// bf16 on a CPU without bf16 instructions.
pub fn slow_precision(precision: Precision, device: Device) -> Option<String> {
    let cpu = Cpu::detect();
    (precision == Precision::Bf16 && device == Device::Cpu && !cpu.has_bf16()).then(|| {
        format!(
            "--precision bf16 on a CPU without bf16 instructions ({cpu}): libtorch emulates it, \
             and scoring ran at 0.07x fp32's speed on such a CPU (2-core AMD EPYC with AVX2 \
             only, docs/results.md); fp32 is faster here"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_model_and_bf16_flags() {
        let text = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C\nflags\t\t: fpu avx512_bf16 amx_tile amx_bf16\n\nprocessor\t: 1\n";
        let cpu = Cpu::parse(text);
        assert_eq!(cpu.model, "Intel(R) Xeon(R) Platinum 8481C");
        assert!(cpu.amx_bf16 && cpu.avx512_bf16);
        let none = Cpu::parse("");
        assert_eq!(none.to_string(), "unknown (AMX-BF16: no, AVX512-BF16: no)");
    }
}
