//! Link flags of the `mtn` binary.
//!
//! `-z pack-relative-relocs` stores the executable's ~70,000 relative relocations as DT_RELR
//! bitmaps (kilobytes) instead of 24-byte RELA entries (1.7 MB), which the dynamic loader would
//! otherwise read, page by page, at every start: a smaller file and ~1.5 MiB less memory per
//! `mtn run`, with the executable still position-independent (ASLR kept; see docs/benchmarks.md
//! for why mtn does not go non-PIE). Needs binutils >= 2.38 and glibc >= 2.36 (Debian 12); the
//! linker adds a GLIBC_ABI_DT_RELR version need, so an older glibc refuses the binary at load
//! with a clear message instead of misrunning.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if linux_gnu {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
