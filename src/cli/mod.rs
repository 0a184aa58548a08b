//! Command-line interface: parses arguments and wires the library modules together.

pub mod eval;

use clap::{Parser, Subcommand};

/// nergrid: declarative experiment grids for fine-tuning transformer encoders on NER.
#[derive(Debug, Parser)]
#[command(name = "nergrid", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Score a CoNLL-style file of gold and predicted tags with seqeval's entity metrics.
    Eval(eval::EvalArgs),
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // Help and version go to stdout with code 0, usage errors to stderr with 2.
            let _ = err.print();
            return err.exit_code();
        }
    };
    let result = match cli.command {
        Command::Eval(args) => eval::run(args),
    };
    result.unwrap_or_else(|err| {
        eprintln!("error: {err:#}");
        1
    })
}
