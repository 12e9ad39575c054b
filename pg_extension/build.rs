//! Stamps the library with a build id: a hash of the extension's sources
//! and SQL, every file under src/ (monitor/ too) and botai-core's sources,
//! which the extension compiles in. Each upgrade records it in
//! botai.installation, so a DBA can tell which build installed the objects.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs" || x == "sql") {
            out.push(path);
        }
    }
}

fn main() {
    let mut files = Vec::new();
    for dir in ["src", "../core/src"] {
        sources(Path::new(dir), &mut files);
        println!("cargo:rerun-if-changed={dir}");
    }
    files.sort();
    let mut h = DefaultHasher::new();
    for f in &files {
        f.to_string_lossy().hash(&mut h);
        std::fs::read(f).expect("readable source").hash(&mut h);
        println!("cargo:rerun-if-changed={}", f.display());
    }
    println!("cargo:rerun-if-changed=Cargo.toml");
    println!("cargo:rustc-env=BOTAI_BUILD_ID={}-{:016x}", std::env::var("CARGO_PKG_VERSION").unwrap(), h.finish());
}
