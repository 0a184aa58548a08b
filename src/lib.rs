//! nergrid: declarative experiment grids for fine-tuning transformer encoders on NER.
//!
//! Data flows one way: `spec` (TOML, typed run parameters) -> `plan` (runs with stable ids) ->
//! `data` (corpora, schemes, splits) -> `model` (encoder + head, two engines) -> `train` (loop,
//! evaluation, best epoch; no I/O) -> `metrics` (seqeval-compatible). `tags` owns tag syntax
//! and chunk boundaries; `runner` does one run's I/O around `train`; `schedule` runs a sweep;
//! `store` owns the results layout; `report` reads only the store (results and the spec
//! snapshot); `cli` wires everything together. See ARCHITECTURE.md.

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
