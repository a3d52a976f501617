//! `--device auto|cpu|cuda|cuda:N`, checked against what libtorch can see.
use tch::{Cuda, Device};
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum DeviceError {
    #[error("unknown device '{0}' (expected auto, cpu, cuda or cuda:N)")]
    Unknown(String),
    #[error("--device {0}: CUDA is not available (libtorch sees no GPU on this machine)")]
    NoCuda(String),
    #[error("--device {asked}: there is no CUDA device {index} (libtorch sees {count})")]
    NoSuchGpu {
        asked: String,
        index: usize,
        count: usize,
    },
}

/// Resolves a device name; `auto` picks the first GPU when there is one.
pub fn parse(name: &str) -> Result<Device, DeviceError> {
    resolve(name, Cuda::device_count().max(0) as usize)
}

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
    fn resolves_names() {
        assert_eq!(resolve("auto", 0), Ok(Device::Cpu));
        assert_eq!(resolve("auto", 2), Ok(Device::Cuda(0)));
        assert_eq!(resolve("cpu", 2), Ok(Device::Cpu));
        assert_eq!(resolve("cuda", 1), Ok(Device::Cuda(0)));
        assert_eq!(resolve("cuda:1", 2), Ok(Device::Cuda(1)));
        assert_eq!(name(Device::Cuda(1)), "cuda:1");
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
