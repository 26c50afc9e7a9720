//! `netkit --batch FILE`: many commands in one process, against a real kernel
//! (tcx on a veth pair, or netkit where the kernel has no veth).

mod common;

use std::io::Write as _;

use common::{hooks::HookEnv, stderr, stdout};
use netkit::mprog::Hook;

fn batch_file(text: &str) -> tempfile_path::Path {
    tempfile_path::Path::with(text)
}

/// A file under the system's temporary directory, removed on drop.
mod tempfile_path {
    pub struct Path(pub std::path::PathBuf);
    impl Path {
        pub fn with(text: &str) -> Self {
            let p = std::env::temp_dir().join(format!("netkit-batch-{}", super::common::unique()));
            std::fs::write(&p, text).unwrap();
            Self(p)
        }
        pub fn arg(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }
    impl Drop for Path {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[test]
fn lines_run_in_order_in_one_process_and_namespaces_do_not_leak() {
    require_root!();
    let env = HookEnv::tcx("tb");
    let pod = env.pod.name.clone();
    let file = batch_file(&format!(
        "# the chain, last to first\n\
         attach dev0 ingress pass --pin 'a'   # a comment after the words, as in a shell\n\
         \n\
         attach dev0 ingress nosuchprogram --first\n\
         -n {pod} device list --all\n"
    ));
    let err = env.fails(&["--batch", file.arg()]);
    assert!(err.contains("line 4") && err.contains("the lines after it were not run"), "{err}");
    let (_, chain) = env.chain(Hook::Ingress);
    assert_eq!(chain.len(), 1, "line 2 ran, line 4 failed, nothing after it: {chain:?}");

    let file = batch_file(&format!(
        "attach dev0 ingress pass --pin b --first\n\
         -n {pod} device list --all\n\
         query dev0 ingress\n"
    ));
    let out = env.ok(&["--batch", file.arg()]);
    // Line 2 ran in the pod (its eth0), line 3 back in the outer namespace.
    assert!(out.contains("eth0"), "{out}");
    let (_, shown) = env.query(Hook::Ingress);
    let names: Vec<String> =
        shown.into_iter().filter_map(|s| s.pin.map(|p| p.rsplit('/').next().unwrap().to_string())).collect();
    assert_eq!(names, ["b", "a"], "{out}");
}

#[test]
fn force_goes_on_after_a_failing_line_and_stdin_works() {
    require_root!();
    let env = HookEnv::tcx("tbf");
    let mut child = env
        .command(&["--batch", "-", "--force"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"attach dev0 egress nosuchprogram\nattach dev0 egress pass --pin x\nnot-a-command\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success(), "a failed line makes the exit status a failure");
    let err = stderr(&o);
    assert!(err.contains("standard input line 1") && err.contains("no bundled program"), "{err}");
    assert!(err.contains("standard input line 3") && err.contains("2 line(s)"), "{err}");
    assert!(stdout(&o).contains("attached"), "line 2 ran: {}", stdout(&o));
    assert_eq!(env.chain(Hook::Egress).1.len(), 1);
}
