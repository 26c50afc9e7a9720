//! `netkit probe` against the running kernel (host and VM).

mod common;

use common::{run, stderr, stdout};

fn probe_json(extra: &[&str]) -> (serde_json::Value, std::process::Output) {
    let mut args = vec!["probe", "--json"];
    args.extend_from_slice(extra);
    let out = run(&args);
    let json = serde_json::from_str(&stdout(&out)).expect("probe --json prints JSON");
    (json, out)
}

#[test]
fn reports_tcx_and_consistent_exit_code() {
    require_root!();
    let bpffs = common::Bpffs::new();
    let (json, out) = probe_json(&["--bpffs", &bpffs.arg()]);
    assert_eq!(json["tcx"]["state"], "supported", "tcx should work on every kernel we test on: {json}");
    assert_eq!(json["bpffs"]["mounted"], true);
    assert_eq!(json["capabilities"]["cap_net_admin"], true);
    let netkit = json["netkit"]["state"].as_str().unwrap().to_string();
    match netkit.as_str() {
        "supported" => {
            assert!(out.status.success(), "nothing missing, yet probe failed: {}", stderr(&out));
            assert!(json["hints"].as_array().unwrap().is_empty());
        }
        "unsupported" => {
            assert!(!out.status.success(), "netkit missing must make probe fail");
            assert!(
                stderr(&out).contains("this kernel has no netkit: needs Linux >= 6.7 built with CONFIG_NETKIT"),
                "hint missing: {}",
                stderr(&out)
            );
        }
        other => panic!("netkit probe state {other}: {json}"),
    }
    assert!(json["kernel"].as_str().unwrap().starts_with(char::is_numeric));
}

#[test]
fn missing_bpffs_is_reported_with_the_mount_command() {
    require_root!();
    let dir = std::env::temp_dir().join(format!("netkit-no-bpffs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, out) = probe_json(&["--bpffs", dir.to_str().unwrap()]);
    std::fs::remove_dir(&dir).unwrap();
    assert_eq!(json["bpffs"]["mounted"], false);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&format!("mount -t bpf bpf {}", dir.display())), "{}", stderr(&out));
}

#[test]
fn human_output_names_every_item() {
    require_root!();
    let out = run(&["probe"]);
    let text = stdout(&out);
    for item in ["kernel", "tcx", "netkit", "bpffs", "CAP_BPF", "CAP_NET_ADMIN", "kernel BTF"] {
        assert!(text.lines().any(|l| l.starts_with(item)), "no {item} line in:\n{text}");
    }
}
