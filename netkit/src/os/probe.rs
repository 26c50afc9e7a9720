//! What the running kernel and this process can do: tcx and netkit support
//! (probed by syscall, never by version number), bpffs, capabilities, BTF.

use std::{ffi::CString, fs, os::fd::AsFd as _, path::Path};

use serde::Serialize;

use super::caps::Capabilities;

use crate::bpf;

/// Answer of a feature probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum Support {
    /// The kernel has it.
    Supported,
    /// The kernel lacks it.
    Unsupported,
    /// The probe itself could not run (e.g. no permission to load a program).
    Unknown(String),
}

impl Support {
    /// True only for [`Support::Supported`].
    pub fn is_supported(&self) -> bool {
        matches!(self, Self::Supported)
    }
}

/// An mprog attach point family the tool uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// tcx hooks (Linux >= 6.6).
    Tcx,
    /// netkit devices and hooks (Linux >= 6.7).
    Netkit,
}

impl Feature {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Tcx => "tcx",
            Self::Netkit => "netkit",
        }
    }

    /// What a kernel needs to have this feature, for messages.
    pub(crate) fn requirement(self) -> &'static str {
        match self {
            Self::Tcx => "Linux >= 6.6 built with CONFIG_NET_XGRESS",
            Self::Netkit => "Linux >= 6.7 built with CONFIG_NETKIT",
        }
    }

    fn attach_type(self) -> u32 {
        match self {
            Self::Tcx => bpf::BPF_TCX_INGRESS,
            Self::Netkit => bpf::BPF_NETKIT_PRIMARY,
        }
    }
}

/// An ifindex no device has: a link create against it reaches the attach
/// type's device lookup, which answers ENODEV only where the type exists.
const NO_SUCH_IFINDEX: u32 = i32::MAX as u32;

/// Probes whether the kernel knows `feature`'s attach types by creating a link
/// on a device that does not exist: ENODEV means the attach path exists,
/// EINVAL means the kernel rejected the attach type itself.
pub fn probe(feature: Feature) -> Support {
    let prog = match bpf::prog_load_sched_cls("netkit_probe", &bpf::insns_return(0)) {
        Ok(fd) => fd,
        Err(e) => return Support::Unknown(format!("cannot load a probe program ({}): needs CAP_BPF", e.io_error)),
    };
    match bpf::link_create(prog.as_fd(), NO_SUCH_IFINDEX, feature.attach_type(), 0, 0, 0) {
        Err(e) if e.errno() == Some(libc::ENODEV) => Support::Supported,
        Err(e) if e.errno() == Some(libc::EINVAL) => Support::Unsupported,
        Err(e) => Support::Unknown(format!("unexpected answer to the probe: {}", e.io_error)),
        // A device with that index exists after all: the attach type works.
        Ok(_link) => Support::Supported,
    }
}

/// `BPF_FS_MAGIC` from linux/magic.h.
const BPF_FS_MAGIC: i64 = 0xcafe4a11;

/// True when `dir` is the root of, or inside, a mounted bpffs.
pub(crate) fn is_bpffs(dir: &Path) -> bool {
    let Ok(path) = CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs fills the zeroed struct; `path` is NUL-terminated.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(path.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC
    }
}

/// Mount points of every bpffs visible to this process.
pub(crate) fn bpffs_mounts() -> Vec<String> {
    let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            let mount_point = left.split_whitespace().nth(4)?;
            (fstype == "bpf").then(|| mount_point.replace("\\040", " "))
        })
        .collect()
}

/// The running kernel's release (`uname -r`), or "unknown".
pub fn kernel_release() -> String {
    // SAFETY: uname fills the zeroed struct; release is NUL-terminated.
    unsafe {
        let mut uts: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut uts) != 0 {
            return "unknown".into();
        }
        std::ffi::CStr::from_ptr(uts.release.as_ptr()).to_string_lossy().into_owned()
    }
}

/// (major, minor) of a release string such as "6.12.95+deb12-cloud-amd64".
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Everything `netkit probe` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The kernel release.
    pub kernel: String,
    /// Whether tcx links work here.
    pub tcx: Support,
    /// Whether netkit devices and links work here.
    pub netkit: Support,
    /// The bpffs this tool pins under.
    pub bpffs: Bpffs,
    /// This process's effective capabilities.
    pub capabilities: Capabilities,
    /// Whether the kernel exposes its BTF (/sys/kernel/btf/vmlinux), which user objects with CO-RE relocations need.
    pub btf: bool,
    /// Whether netkit devices can lease queues of physical devices (the
    /// netdev family's queue-create, Linux 7.1); filled in by the caller,
    /// which asks generic netlink (`netlink::leases::supported`).
    pub queue_leasing: Support,
    /// One line per missing requirement, saying what to do.
    pub hints: Vec<String>,
}

/// The bpffs this tool pins under, and every bpffs mounted.
#[derive(Debug, Clone, Serialize)]
pub struct Bpffs {
    /// The directory this tool pins under (`--bpffs`).
    pub path: String,
    /// Whether `path` is a bpffs mount.
    pub mounted: bool,
    /// Every bpffs mount point this process sees.
    pub mounts: Vec<String>,
}

impl Report {
    /// Probes the running kernel and this process (loads and attaches small test programs).
    pub fn collect(bpffs_dir: &Path) -> Self {
        let tcx = probe(Feature::Tcx);
        let netkit = probe(Feature::Netkit);
        let capabilities = Capabilities::effective();
        let bpffs =
            Bpffs { path: bpffs_dir.display().to_string(), mounted: is_bpffs(bpffs_dir), mounts: bpffs_mounts() };
        let mut hints = Vec::new();
        for (feature, support) in [(Feature::Tcx, &tcx), (Feature::Netkit, &netkit)] {
            match support {
                Support::Supported => {}
                Support::Unsupported => {
                    hints.push(format!("this kernel has no {}: needs {}", feature.name(), feature.requirement()))
                }
                Support::Unknown(why) => hints.push(format!("could not probe {}: {why}", feature.name())),
            }
        }
        if !bpffs.mounted {
            hints.push(format!(
                "no bpffs at {0}: mount one with `mount -t bpf bpf {0}` or pass --bpffs DIR",
                bpffs.path
            ));
        }
        if !capabilities.can_bpf() {
            hints.push("missing CAP_BPF (or CAP_SYS_ADMIN): run as root or grant it".into());
        }
        if !capabilities.cap_net_admin {
            hints.push("missing CAP_NET_ADMIN: run as root or grant it".into());
        }
        Self {
            kernel: kernel_release(),
            tcx,
            netkit,
            bpffs,
            capabilities,
            btf: Path::new(KERNEL_BTF).exists(),
            queue_leasing: Support::Unknown("not asked".into()),
            hints,
        }
    }

    /// True when nothing the tool needs is missing.
    pub fn ok(&self) -> bool {
        self.hints.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_debian_releases() {
        assert_eq!(parse_release("6.12.95+deb12-cloud-amd64"), Some((6, 12)));
        assert_eq!(parse_release("7.3.4+deb13-cloud-amd64"), Some((7, 3)));
        assert_eq!(parse_release("6.18.44-fc-v657"), Some((6, 18)));
        assert_eq!(parse_release("garbage"), None);
    }
}
