//! Plan: expands a `Spec` into runs with stable ids. Pure: no I/O.

mod expand;
mod id;

pub use expand::{expand, parse_shard, select, Plan, RunSpec};
pub use id::{params_hash, slug};

#[cfg(test)]
mod tests;
