//! Writes the generated CRD YAML to `crds/` and `charts/sluice/crds/`.
fn main() {}
