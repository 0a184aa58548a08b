//! The grid spec: TOML text parsed and validated into a typed `Spec` before anything runs.

mod devices;
mod env;
mod error;
mod keys;
mod model;
mod parse;

#[cfg(test)]
mod tests;

pub use devices::{parse_devices, DeviceSelection};
pub use env::{expand as expand_env, expand_with as expand_env_with};
pub use error::{SpecError, SpecErrors, SpecLoadError};
pub use model::{format_float, DatasetEntry, Experiment, Grid, ModelSource, ParamValue, ScheduleSpec, SlurmSpec, Spec};
pub use parse::{load, parse};

pub(crate) use keys::{TrainKey, ID_ONLY_WHEN_SET, TRAIN_KEYS};
pub use parse::parse_duration;
