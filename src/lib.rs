//! `vog`: rank the examples of an image dataset by difficulty with Variance of Gradients
//! (Agarwal & Hooker, "Estimating Example Difficulty using Variance of Gradients").
//!
//! Layers: [`data`] (datasets, transforms), [`model`] (ResNet-18), [`train`],
//! [`checkpoint`] (run directory and manifest), [`cli`].
pub mod atomic_file;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod data;
pub mod demo;
pub mod device;
pub mod eval;
pub mod experiment;
pub mod grid;
pub mod info;
pub mod model;
pub mod rank;
pub mod report;
pub mod rng;
pub mod schedule;
pub mod score;
pub mod scores;
pub mod train;
pub mod vog;
