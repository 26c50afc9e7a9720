//! The eBPF objects bundled into the binary (built from netkit-ebpf by the
//! build script) and the loading of programs from them.

use aya::include_bytes_aligned;

/// A program that ships inside the binary.
#[derive(Debug, Clone, Copy)]
pub struct Bundled {
    pub name: &'static str,
    pub summary: &'static str,
    object: &'static [u8],
}

/// Every bundled program, in the order `netkit prog list` shows them.
pub const BUNDLED: &[Bundled] = &[Bundled {
    name: "pass",
    summary: "lets every packet through and ends the chain (TCX_PASS)",
    object: include_bytes_aligned!(concat!(env!("OUT_DIR"), "/pass")),
}];

/// Set when the build skipped the eBPF programs (NETKIT_SKIP_EBPF=1).
pub const STUB_BUILD: bool = cfg!(netkit_ebpf_stub);

#[derive(Debug, thiserror::Error)]
pub enum BundledError {
    #[error(
        "this netkit binary was built with NETKIT_SKIP_EBPF=1 and carries no eBPF programs; rebuild it without that variable (cargo build -p netkit-cli)"
    )]
    StubBuild,
    #[error("no bundled program named `{0}` (bundled: {1})")]
    Unknown(String, String),
}

impl Bundled {
    pub fn find(name: &str) -> Result<&'static Self, BundledError> {
        BUNDLED.iter().find(|b| b.name == name).ok_or_else(|| {
            BundledError::Unknown(name.into(), BUNDLED.iter().map(|b| b.name).collect::<Vec<_>>().join(", "))
        })
    }

    /// The ELF object, refusing the empty placeholder of a stub build.
    pub fn object(&self) -> Result<&'static [u8], BundledError> {
        if STUB_BUILD || self.object.is_empty() {
            return Err(BundledError::StubBuild);
        }
        Ok(self.object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_object_is_refused_never_loaded() {
        let b = Bundled { name: "x", summary: "", object: &[] };
        assert!(matches!(b.object(), Err(BundledError::StubBuild)));
    }

    #[test]
    fn bundled_objects_are_bpf_elf_files() {
        if STUB_BUILD {
            return;
        }
        for b in BUNDLED {
            let obj = b.object().unwrap();
            assert_eq!(&obj[..4], b"\x7fELF", "{} is not ELF", b.name);
            // e_machine EM_BPF (247), little-endian.
            assert_eq!(u16::from_le_bytes([obj[18], obj[19]]), 247, "{} is not a BPF object", b.name);
        }
    }

    #[test]
    fn unknown_names_list_the_bundled_ones() {
        let e = Bundled::find("nope").unwrap_err().to_string();
        assert!(e.contains("pass"), "{e}");
    }
}
