//! Stamps the library with a build id: a hash of the extension's sources
//! and SQL. The install script records it, so `botai db migrate` can tell a
//! database whose botai objects came from another build of the same version.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;

fn main() {
    let mut files: Vec<_> = std::fs::read_dir("src")
        .expect("src/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs" || x == "sql"))
        .collect();
    files.sort();
    let mut h = DefaultHasher::new();
    for f in &files {
        f.file_name().hash(&mut h);
        std::fs::read(f).expect("readable source").hash(&mut h);
        println!("cargo:rerun-if-changed={}", f.display());
    }
    for f in ["Cargo.toml", "../core/src"] {
        if Path::new(f).exists() {
            println!("cargo:rerun-if-changed={f}");
        }
    }
    println!("cargo:rustc-env=BOTAI_BUILD_ID={}-{:016x}", std::env::var("CARGO_PKG_VERSION").unwrap(), h.finish());
}
