//! Links the `vog` binary so it finds libtorch at run time without LD_LIBRARY_PATH,
//! keeps CUDA visible, records the tch/libtorch versions it was built against, and compiles
//! the C++ shims of `csrc/` (autocast with a chosen dtype, backend switches) against
//! libtorch's headers.
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
        compile_shims(Path::new(&lib));
    } else {
        panic!("DEP_TCH_LIBTORCH_LIB is unset: torch-sys did not report libtorch's location");
    }
    println!(
        "cargo:rustc-env=VOG_TCH_VERSION={}",
        locked_version("tch").unwrap_or_else(|| "unknown".into())
    );
}

/// Builds the shims of `csrc/` with libtorch's headers (`lib/../include`) and the C++ ABI
/// libtorch was built with.
fn compile_shims(lib: &Path) {
    println!("cargo:rerun-if-changed=csrc");
    let include = lib
        .parent()
        .expect("libtorch's lib folder has a parent")
        .join("include");
    let abi = if cxx11_abi(lib) { "1" } else { "0" };
    cc::Build::new()
        .cpp(true)
        .file("csrc/autocast.cpp")
        .file("csrc/backends.cpp")
        .file("csrc/foreach.cpp")
        .include(&include)
        .flag("-std=c++17")
        .flag("-w")
        .define("_GLIBCXX_USE_CXX11_ABI", abi)
        .compile("vog_shims");
}

/// Whether libtorch uses the C++11 string ABI: its libc10 names `std::__cxx11` symbols.
fn cxx11_abi(lib: &Path) -> bool {
    fs::read(lib.join("libc10.so"))
        .map(|bytes| bytes.windows(10).any(|w| w == b"St7__cxx11"))
        .unwrap_or(true)
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
