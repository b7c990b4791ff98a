//! Entry point of the `sluice` binary.
fn main() {}
