//! Links the `vog` binary so it finds libtorch at run time without LD_LIBRARY_PATH,
//! keeps CUDA visible, and records the tch/libtorch versions it was built against.
use std::env;
use std::fs;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=Cargo.lock");
    if let Ok(lib) = env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        // The linker drops libtorch_cuda.so as "unneeded" (nothing references its symbols
        // directly), and without it loaded libtorch reports no CUDA device.
        if Path::new(&lib).join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        }
        println!(
            "cargo:rustc-env=VOG_BUILD_LIBTORCH_VERSION={}",
            libtorch_version(Path::new(&lib)).unwrap_or_else(|| "unknown".into())
        );
    } else {
        println!("cargo:rustc-env=VOG_BUILD_LIBTORCH_VERSION=unknown");
    }
    println!(
        "cargo:rustc-env=VOG_TCH_VERSION={}",
        locked_version("tch").unwrap_or_else(|| "unknown".into())
    );
}

/// The version of the torch Python package (`torch/version.py`) or of a standalone
/// libtorch (`build-version`) whose `lib` folder is `lib`.
fn libtorch_version(lib: &Path) -> Option<String> {
    let root = lib.parent()?;
    if let Ok(text) = fs::read_to_string(root.join("version.py")) {
        return text.lines().find_map(|l| {
            let v = l.strip_prefix("__version__")?.split('\'').nth(1)?;
            Some(v.to_string())
        });
    }
    fs::read_to_string(root.join("build-version"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// The version of package `name` pinned in Cargo.lock.
fn locked_version(name: &str) -> Option<String> {
    let lock = fs::read_to_string("Cargo.lock").ok()?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{name}\"") {
            let v = lines
                .next()?
                .strip_prefix("version = \"")?
                .trim_end_matches('"');
            return Some(v.to_string());
        }
    }
    None
}
