//! Rebuild the programs when bpf-linker changes, and say clearly when it is
//! missing instead of failing deep inside the link step.
fn main() {
    match which::which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(err) => {
            println!("cargo:warning=bpf-linker not found ({err}); run `cargo xtask setup`")
        }
    }
}
