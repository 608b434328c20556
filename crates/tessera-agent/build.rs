//! Compiles the kernel fast path (`bpf/fastpath.c`) with clang into `$OUT_DIR/fastpath.o`.
//! Without clang the object is empty and the agent runs without the fast path (it says so).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=bpf/fastpath.c");
    println!("cargo:rerun-if-env-changed=CLANG");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("fastpath.o");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    // The kernel's UAPI headers include <asm/types.h>, which Debian keeps per architecture.
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let multiarch = format!("-I/usr/include/{arch}-linux-gnu");
    let built = Command::new(&clang)
        .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf", &multiarch, "-c", "bpf/fastpath.c", "-o"])
        .arg(&out)
        .status()
        .is_ok_and(|s| s.success());
    if !built {
        println!("cargo:warning=could not compile bpf/fastpath.c with {clang}: the kernel fast path is left out");
        std::fs::write(&out, b"").expect("write an empty fastpath.o");
    }
}
