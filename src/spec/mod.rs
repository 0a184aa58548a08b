//! The grid spec: TOML text parsed and validated into a typed `Spec` before anything runs.

mod devices;
mod env;
mod error;
mod keys;
mod model;
mod params;
mod parse;
mod paths;

#[cfg(test)]
mod tests;

pub use devices::{parse_devices, DeviceSelection};
pub use env::{expand as expand_env, expand_with as expand_env_with};
pub use error::{SpecError, SpecErrors, SpecLoadError};
pub use model::{format_float, DatasetEntry, Experiment, Grid, ModelSource, ParamValue, ScheduleSpec, SlurmSpec, Spec};
pub use params::{Engine, LabelAlignment, Precision, RunParams, SelectMetric, TrainSettings};
pub use parse::{load, parse};
pub use paths::{missing_paths, missing_paths_of};

#[cfg(test)]
pub(crate) use keys::TRAIN_KEYS;
pub(crate) use keys::{in_run_id, is_added_default};
pub use parse::parse_duration;
