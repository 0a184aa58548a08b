//! nergrid: declarative experiment grids for fine-tuning transformer encoders on NER.
//!
//! Data flows one way: `spec` (TOML) -> `plan` (runs with stable ids) -> `data` (corpora,
//! schemes, splits) -> `model` (encoder + head) -> `train` (loop, evaluation, best epoch) ->
//! `metrics` (seqeval-compatible). `store` owns the results layout, `report` reads only the
//! store, `cli` wires everything together.

pub(crate) mod atomic;
pub mod cli;
pub mod data;
pub mod metrics;
pub mod model;
pub mod plan;
pub(crate) mod progress;
pub mod report;
pub mod runner;
pub mod schedule;
pub(crate) mod slurm;
pub mod spec;
pub mod stats;
pub mod store;
pub mod tags;
pub mod train;
