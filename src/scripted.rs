//! A user's own network as TorchScript checkpoints (`torch.jit.trace` or `torch.jit.script`
//! of the model in eval mode, saved with `torch.jit.save`), one file per checkpoint.
//!
//! Each file is loaded with libtorch's JIT (tch's `CModule`), put in eval mode and called
//! through its `forward`, which must map NCHW f32 inputs to `[N, classes]` logits; input
//! gradients flow through it exactly as through the built-in ResNet. The K files of one
//! scoring must be the same architecture: their parameter names and shapes are compared,
//! and the first difference is named.
//!
//! One architecture plus K state dicts is not offered: tch reaches a TorchScript module's
//! parameters but not its buffers (BatchNorm running statistics), so such checkpoints
//! could not be loaded faithfully.
use crate::precision::Precision;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use tch::nn::ModuleT;
use tch::{CModule, Device, Tensor};

/// What a scored model returns.
const LOGITS: &str = "[batch, classes] logits";

/// One TorchScript checkpoint, in eval mode.
#[derive(Debug)]
pub struct ScriptedModel {
    pub path: PathBuf,
    module: CModule,
}

impl ModuleT for ScriptedModel {
    /// `x`: NCHW in the model's precision, normalized; returns `[N, classes]` logits. Only
    /// called after [`ScriptedModel::check_output`] accepted the input size, so a failure
    /// here is libtorch's (out of memory) and is not recoverable.
    fn forward_t(&self, x: &Tensor, _train: bool) -> Tensor {
        self.module
            .forward_ts(&[x])
            .unwrap_or_else(|e| panic!("model '{}' failed: {e}", self.path.display()))
    }
}

/// First line of a libtorch message (they carry a C++ backtrace below).
fn first_line(e: &tch::TchError) -> String {
    e.to_string()
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

impl ScriptedModel {
    /// Loads `path` onto `device` in `precision`, in eval mode.
    pub fn load(path: &Path, device: Device, precision: Precision) -> Result<Self> {
        if !path.is_file() {
            bail!("model file '{}' does not exist", path.display());
        }
        let mut module = CModule::load_on_device(path, device).map_err(|e| {
            anyhow::anyhow!(
                "'{}' is not a TorchScript model (save one with torch.jit.save): {}",
                path.display(),
                first_line(&e)
            )
        })?;
        module.f_set_eval().map_err(|e| {
            anyhow::anyhow!(
                "cannot put '{}' in eval mode: {}",
                path.display(),
                first_line(&e)
            )
        })?;
        precision.cast_module(&mut module, device);
        Ok(ScriptedModel {
            path: path.to_path_buf(),
            module,
        })
    }

    /// (name, shape) of every parameter, in the module's order.
    pub fn signature(&self) -> Result<Vec<(String, Vec<i64>)>> {
        let params = self.module.named_parameters().map_err(|e| {
            anyhow::anyhow!(
                "cannot read the parameters of '{}': {}",
                self.path.display(),
                first_line(&e)
            )
        })?;
        Ok(params.into_iter().map(|(n, t)| (n, t.size())).collect())
    }

    /// Runs `probe` (NCHW, one image, as scoring will feed it), checks that the output is
    /// `[1, width]` (what the caller `expects`, e.g. `[batch, classes] logits`) and returns
    /// the width.
    pub fn output_width(&self, probe: &Tensor, expects: &str) -> Result<usize> {
        let shape = probe.size();
        let out = tch::no_grad(|| self.module.forward_ts(&[probe])).map_err(|e| {
            anyhow::anyhow!(
                "model '{}' cannot take {}x{}x{} inputs (or has no forward method): {}",
                self.path.display(),
                shape[1],
                shape[2],
                shape[3],
                first_line(&e)
            )
        })?;
        let size = out.size();
        if size.len() != 2 {
            bail!(
                "model '{}' returns a {}-D output {size:?}; it must return {expects}",
                self.path.display(),
                size.len()
            );
        }
        if size[0] != shape[0] {
            bail!(
                "model '{}' returns {} row(s) of logits for a batch of {} images; it must return one row per image",
                self.path.display(),
                size[0],
                shape[0]
            );
        }
        Ok(size[1] as usize)
    }

    /// Refuses a model whose logits do not depend on its input: it has no input gradient.
    pub fn check_gradient(&self, probe: &Tensor) -> Result<()> {
        let x = probe.detach().set_requires_grad(true);
        let refuse = || {
            anyhow::anyhow!(
                "model '{}': its output does not depend on its input, so it has no input \
                 gradient to take the variance of",
                self.path.display()
            )
        };
        let out = self
            .module
            .forward_ts(&[&x])
            .map_err(|e| anyhow::anyhow!("model '{}': {}", self.path.display(), first_line(&e)))?;
        let total = out.to_kind(tch::Kind::Float).sum(tch::Kind::Float);
        let grads = Tensor::f_run_backward(&[total], &[&x], false, false).map_err(|_| refuse())?;
        match grads.first() {
            Some(g) if g.defined() => Ok(()),
            _ => Err(refuse()),
        }
    }

    /// [`ScriptedModel::output_width`], required to be `classes`.
    pub fn check_output(&self, probe: &Tensor, classes: usize) -> Result<()> {
        let width = self.output_width(probe, LOGITS)?;
        if width != classes {
            bail!(
                "model '{}' returns {width} logits per image, but the data has {classes} classes (pass --classes with the model's class order)",
                self.path.display()
            );
        }
        Ok(())
    }
}

/// Loads every file and checks they share one architecture.
pub fn load_all(
    paths: &[PathBuf],
    device: Device,
    precision: Precision,
) -> Result<Vec<ScriptedModel>> {
    let models = paths
        .iter()
        .map(|p| ScriptedModel::load(p, device, precision))
        .collect::<Result<Vec<_>>>()?;
    if let Some((first, rest)) = models.split_first() {
        let reference = first.signature()?;
        for m in rest {
            same_architecture(first, &reference, m, &m.signature()?)?;
        }
    }
    Ok(models)
}

fn same_architecture(
    a: &ScriptedModel,
    sa: &[(String, Vec<i64>)],
    b: &ScriptedModel,
    sb: &[(String, Vec<i64>)],
) -> Result<()> {
    let differ = |what: String| -> Result<()> {
        bail!(
            "'{}' and '{}' are different architectures: {what}",
            a.path.display(),
            b.path.display()
        )
    };
    for (i, (pa, pb)) in sa.iter().zip(sb).enumerate() {
        if pa.0 != pb.0 {
            return differ(format!(
                "parameter {i} is '{}' in one, '{}' in the other",
                pa.0, pb.0
            ));
        }
        if pa.1 != pb.1 {
            return differ(format!(
                "parameter '{}' has shape {:?} in one, {:?} in the other",
                pa.0, pa.1, pb.1
            ));
        }
    }
    if sa.len() != sb.len() {
        return differ(format!("{} parameters against {}", sa.len(), sb.len()));
    }
    Ok(())
}

/// The model files of `inputs`: files as given, folders expanded to their `*.pt`/`*.pth`
/// files in natural order of their names (`epoch-2` before `epoch-10`: the checkpoint
/// order).
pub fn model_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot read model folder '{}'", p.display()))?
                .map(|e| e.map(|e| e.path()))
                .collect::<std::io::Result<_>>()
                .with_context(|| format!("cannot read model folder '{}'", p.display()))?;
            found.retain(|f| f.extension().is_some_and(|e| e == "pt" || e == "pth"));
            found.sort_by(|a, b| natural_cmp(&file_name(a), &file_name(b)));
            if found.is_empty() {
                bail!("model folder '{}' holds no .pt or .pth file", p.display());
            }
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    for (i, p) in out.iter().enumerate() {
        if out[..i].contains(p) {
            bail!("model file '{}' is given twice", p.display());
        }
    }
    Ok(out)
}

/// The file name of `p` ("" for none), as messages and sidecars name a checkpoint.
pub fn file_name(p: &Path) -> String {
    p.file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned())
}

/// Orders names as a person reads them: runs of digits by their number (`epoch-2` before
/// `epoch-10`), the rest character by character; equal-valued numbers by their text.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut x, mut y) = (a, b);
    loop {
        let (Some(cx), Some(cy)) = (x.chars().next(), y.chars().next()) else {
            return x.len().cmp(&y.len()).then_with(|| a.cmp(b));
        };
        let order = if cx.is_ascii_digit() && cy.is_ascii_digit() {
            let (nx, rx) = split_digits(x);
            let (ny, ry) = split_digits(y);
            (x, y) = (rx, ry);
            let (tx, ty) = (nx.trim_start_matches('0'), ny.trim_start_matches('0'));
            tx.len().cmp(&ty.len()).then_with(|| tx.cmp(ty))
        } else {
            (x, y) = (&x[cx.len_utf8()..], &y[cy.len_utf8()..]);
            cx.cmp(&cy)
        };
        if order.is_ne() {
            return order;
        }
    }
}

/// The leading digits of `s` and the rest.
fn split_digits(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

#[cfg(test)]
mod natural_tests {
    use super::natural_cmp;

    #[test]
    fn numbers_sort_by_value() {
        let mut names = vec![
            "epoch-10.pt",
            "epoch-2.pt",
            "epoch-1.pt",
            "b.pt",
            "a10b2.pt",
            "a10b10.pt",
            "epoch-02.pt",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            vec![
                "a10b2.pt",
                "a10b10.pt",
                "b.pt",
                "epoch-1.pt",
                "epoch-02.pt",
                "epoch-2.pt",
                "epoch-10.pt"
            ]
        );
    }
}
