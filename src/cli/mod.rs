//! Command-line interface: parses arguments and wires the library modules together.

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    0
}
