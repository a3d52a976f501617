//! `vog`: rank the examples of an image dataset by difficulty with Variance of Gradients
//! (Agarwal & Hooker, "Estimating Example Difficulty using Variance of Gradients").
//!
//! The modules follow the data's one-way flow, dataset -> training -> checkpoints ->
//! scores -> evaluation, ranking and report. Lowest layer first; a module imports only
//! from layers below its own (`tests/layers.rs` checks this from the source):
//!
//! 1. Foundations: [`atomic_file`], [`rng`], [`progress`] (the one reporting interface),
//!    [`origin`] (where a setting came from; the one way a flag overrides it), [`device`],
//!    [`digest`] (SHA-256 of files), [`precision`] (fp32/bf16/fp16 and autocast),
//!    [`export`] (the one output format; tables as text and HTML), [`raster`] (SVG to
//!    pixels with the bundled font).
//! 2. [`epochs`] (learning rate, epoch specs, stages), [`info`] (versions, the CPU).
//! 3. [`data`]: datasets, subsets, label noise, normalization, downloads, streamed sets.
//! 4. [`model`]: the CIFAR ResNet-18; [`optim`]: SGD whose state can be saved.
//! 5. [`variance`] (the VoG math, and gradients captured during training; its tests run
//!    it through the model), [`confident`] (confident learning on out-of-sample
//!    probabilities), [`logistic`] (multinomial logistic regression on features),
//!    [`neighbours`] (outliers and near-duplicates among feature vectors), [`scripted`] (a
//!    user's TorchScript checkpoints).
//! 6. [`config`] (training recipe, which names what training captures).
//! 7. [`dynamics`]: the training-dynamics record and the scores built from it.
//! 8. File formats: [`run_dir`] (run directory and manifest), [`scores`] (scores CSV,
//!    sidecar, class normalization and the ordering of scored examples), [`oof`] (the
//!    out-of-sample probabilities of `vog crossval`), [`features`] (the feature files of
//!    `vog embed`).
//! 9. [`grid`]: example images by id, and grids of them.
//! 10. The stages, side by side: [`train`] (a folder of rooms: trainer, epoch, commit,
//!     capture, derived runs, memory), [`scoring`] (a run's checkpoints or TorchScript
//!     models, one tail; gradients, rows, captured, joined columns, provenance),
//!     [`eval`], [`rank`], [`merge`] (shards of one scoring into one scores file).
//! 11. [`prune`]: retraining without (or relabelling) what a score flags, against random.
//! 12. [`report`]: the HTML page over their results; [`review`]: the page on which a
//!     person decides about the examples a ranking selects; [`verify`]: every file a run
//!     folder holds that vog wrote (its crossval and prune folders too), checked.
//! 13. [`bench`]: the throughput of training and scoring; [`crossval`]: out-of-sample
//!     probabilities by cross-fitting; [`embed`]: the features of a dataset's images.
//! 14. [`pipeline`]: train -> (embed -> cross-fit) -> score -> evaluate -> report in one
//!     call.
//! 15. [`demo`] and [`experiment`]: the pipeline with their settings.
//! 16. [`cli`]: one file per command (clap's arguments, one resolve step into the
//!     library's request, the call) and the terminal reporter; clap is used nowhere else.
//!
//! Only what `main.rs` and the tests use is public; the rest is `pub(crate)`, so rustc
//! reports what nothing uses.
// The layer list above names every module, public or not.
#![allow(rustdoc::private_intra_doc_links)]

pub(crate) mod atomic_file;
pub(crate) mod bench;
pub mod cli;
pub mod confident;
pub mod config;
pub(crate) mod crossval;
pub mod data;
pub(crate) mod demo;
pub(crate) mod device;
pub(crate) mod digest;
pub(crate) mod dynamics;
pub(crate) mod embed;
pub mod epochs;
pub mod eval;
pub mod experiment;
pub(crate) mod export;
pub(crate) mod features;
pub(crate) mod grid;
pub(crate) mod info;
pub(crate) mod logistic;
pub(crate) mod merge;
pub mod model;
pub(crate) mod neighbours;
pub(crate) mod oof;
pub mod optim;
pub mod origin;
pub(crate) mod pipeline;
pub(crate) mod precision;
pub(crate) mod progress;
pub(crate) mod prune;
pub(crate) mod rank;
pub(crate) mod raster;
pub(crate) mod report;
pub(crate) mod review;
pub(crate) mod rng;
pub mod run_dir;
pub mod scores;
pub(crate) mod scoring;
pub(crate) mod scripted;
pub mod train;
pub(crate) mod variance;
pub(crate) mod verify;
