//! Command-line interface: parses arguments and wires the library modules together.

pub mod data;

use clap::{Parser, Subcommand};

/// nergrid: declarative experiment grids for fine-tuning transformer encoders on NER.
#[derive(Parser)]
#[command(name = "nergrid", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Inspect, split and label datasets.
    Data(data::DataArgs),
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let result = match cli.command {
        Command::Data(args) => data::run(args),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        1
    })
}
