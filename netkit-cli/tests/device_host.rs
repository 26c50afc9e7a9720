//! Device commands where the kernel or the caller lacks something: a kernel
//! without netkit, and a caller without CAP_NET_ADMIN.

mod common;

use std::os::unix::{fs::PermissionsExt as _, process::CommandExt as _};

#[test]
fn a_kernel_without_netkit_is_named_as_such() {
    require_root!();
    if netkit::os::probe::probe(netkit::os::probe::Feature::Netkit).is_supported() {
        common::skip("this kernel has netkit; the no-netkit message cannot be shown here");
        return;
    }
    let ns = common::TestNs::new("nonetkit");
    let err = ns.fails(&["device", "add", "nk0", "--peer", "nk1"]);
    assert!(err.contains("this kernel has no netkit (needs Linux >= 6.7 built with CONFIG_NETKIT)"), "{err}");
    let list = ns.ok(&["device", "list", "--all"]);
    assert!(!list.contains("nk0"), "nothing may be left behind: {list}");
}

#[test]
fn without_cap_net_admin_the_missing_capability_is_named() {
    require_root!();
    // The build tree may sit where uid 65534 cannot reach (root's home is
    // mode 700 on Debian): run a copy from a directory anyone can enter.
    let dir = std::env::temp_dir().join(format!("netkit-nopriv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.join("netkit");
    std::fs::copy(common::bin(), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = std::process::Command::new(&bin)
        .args(["device", "add", "nkt-nopriv0", "--peer", "nkt-nopriv1"])
        .current_dir("/")
        .uid(65534)
        .gid(65534)
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let out = out.unwrap();
    assert!(!out.status.success());
    let err = common::stderr(&out);
    assert!(err.contains("permission denied") && err.contains("CAP_NET_ADMIN"), "{err}");
}
