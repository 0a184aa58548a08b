fn main() {
    std::process::exit(nergrid::cli::main());
}
