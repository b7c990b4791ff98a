//! Writes the generated CRD YAML to `crds/` and `charts/sluice/crds/`.
//!
//! Run from anywhere in the workspace: `cargo run --bin crdgen`. The test
//! `crds/tests/generated.rs` fails when the committed files are stale.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sluice_crds::generate::{OUTPUT_DIRS, generate};

fn main() -> Result<()> {
    let root = workspace_root();
    for dir in OUTPUT_DIRS {
        let dir = root.join(dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for file in generate() {
            let path = dir.join(&file.file_name);
            std::fs::write(&path, &file.yaml)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}

/// The workspace root: the parent of this crate's directory.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crds/ has a parent")
        .to_path_buf()
}
