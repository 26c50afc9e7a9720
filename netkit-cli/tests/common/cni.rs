//! Driving the CNI plugin as runtimes do: a node namespace, conflists
//! executed by libcni (`NETKIT_TEST_CNI_RUNTIME`) with the reference
//! plugins from `NETKIT_TEST_CNI_PATH`, and what an attachment leaves read
//! by iproute2, the file systems and host-local's state.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use serde_json::{Value, json};

use super::{Bpffs, TestNs, stdout, udp_delivers, witness};

/// Where the guest has the plugins and the runtime.
pub fn cni_path() -> Option<String> {
    std::env::var("NETKIT_TEST_CNI_PATH").ok().filter(|p| Path::new(p).join("netkit-cni").is_file())
}

pub fn runtime_bin() -> String {
    std::env::var("NETKIT_TEST_CNI_RUNTIME").expect("NETKIT_TEST_CNI_RUNTIME")
}

/// Skips the calling test unless the plugins and the runtime are there
/// (any kernel: for veth pairs).
#[macro_export]
macro_rules! require_cni_parts {
    () => {
        $crate::require_root!();
        if $crate::common::cni::cni_path().is_none() {
            $crate::common::skip("no CNI plugins (NETKIT_TEST_CNI_PATH): cargo xtask test sets them up");
            return;
        }
    };
}

#[macro_export]
macro_rules! require_cni {
    () => {
        $crate::require_netkit!();
        if $crate::common::cni::cni_path().is_none() {
            $crate::common::skip("no CNI plugins (NETKIT_TEST_CNI_PATH): the VM suite carries them");
            return;
        }
    };
}

/// One node: its namespace, bpffs, and a directory for the plugin's state,
/// host-local's allocations, libcni's cache and the conflists.
pub struct Node {
    pub ns: TestNs,
    pub bpffs: Bpffs,
    pub dir: PathBuf,
    /// CNI_PATH for the runtime and the plugin.
    pub path: String,
}

impl Node {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("netkit-cni-{tag}-{}-{}", std::process::id(), super::unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let ns = TestNs::new(tag);
        // A node forwards; the plugin turns it on when it is off (checked below).
        Self { ns, bpffs: Bpffs::new(), dir, path: cni_path().unwrap() }
    }

    /// A node whose IPAM plugin is Debian 12's host-local (reference plugins
    /// 1.1.1: CNI up to 1.0.0, no GC, no STATUS), found first in CNI_PATH;
    /// None where the guest does not carry it.
    pub fn with_bookworm_ipam(tag: &str) -> Option<Self> {
        let old =
            std::env::var("NETKIT_TEST_CNI_BOOKWORM").ok().filter(|d| Path::new(d).join("host-local").is_file())?;
        let mut node = Self::new(tag);
        node.path = format!("{old}:{}", node.path);
        Some(node)
    }

    pub fn ipam_dir(&self) -> PathBuf {
        self.dir.join("ipam")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// The netkit plugin's configuration with `extra` keys merged in.
    pub fn netkit_conf(&self, version: &str, extra: Value) -> Value {
        let mut conf = json!({
            "cniVersion": version,
            "name": "pods",
            "type": "netkit-cni",
            "bpffs": self.bpffs.arg(),
            "stateDir": self.state_dir(),
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.22.0.0/24"}]], "dataDir": self.ipam_dir()},
        });
        for (k, v) in extra.as_object().unwrap() {
            conf[k] = v.clone();
        }
        conf
    }

    /// A conflist: netkit, then `tuning` reading its prevResult.
    pub fn conflist(&self, extra: Value) -> PathBuf {
        let list = json!({
            "cniVersion": "1.1.0",
            "name": "pods",
            "plugins": [
                self.netkit_conf("1.1.0", extra),
                {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.arp_ignore": "1"}},
            ],
        });
        let path = self.dir.join(format!("net-{}.conflist", super::unique()));
        std::fs::write(&path, serde_json::to_vec_pretty(&list).unwrap()).unwrap();
        path
    }

    /// Runs the libcni runtime in the node's namespace.
    pub fn runtime(&self, args: &[&str], fault: Option<&str>) -> Output {
        self.runtime_cmd(args, fault).output().expect("the CNI runtime runs")
    }

    pub fn runtime_cmd(&self, args: &[&str], fault: Option<&str>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.ns.path.display()))
            .arg(runtime_bin())
            .args(args)
            .env("CNI_PATH", &self.path)
            .env("CNI_CACHE_DIR", self.dir.join("cache"));
        match fault {
            Some(f) => cmd.env("NETKIT_FAULT", f),
            None => cmd.env_remove("NETKIT_FAULT"),
        };
        cmd
    }

    pub fn add(&self, list: &Path, id: &str, pod: &TestNs) -> Value {
        let o = self.runtime(&["add", &list.display().to_string(), id, &pod.path.display().to_string(), "eth0"], None);
        assert!(o.status.success(), "ADD {id} failed: {}{}", stdout(&o), super::stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    /// The error object of a failed runtime command.
    pub fn add_fails(&self, list: &Path, id: &str, pod: &TestNs, fault: Option<&str>) -> Value {
        let o = self.runtime(&["add", &list.display().to_string(), id, &pod.path.display().to_string(), "eth0"], fault);
        assert!(!o.status.success(), "ADD {id} should fail: {}", stdout(&o));
        serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("no error object: {}", stdout(&o)))
    }

    pub fn cmd(&self, verb: &str, list: &Path, id: &str, pod: &TestNs) -> Output {
        self.cmd_of(verb, list, id, pod).output().expect("the CNI runtime runs")
    }

    /// The runtime's `VERB` of container `id`, to be started.
    pub fn cmd_of(&self, verb: &str, list: &Path, id: &str, pod: &TestNs) -> Command {
        self.runtime_cmd(&[verb, &list.display().to_string(), id, &pod.path.display().to_string(), "eth0"], None)
    }

    /// The plugin itself in the node's namespace, as a runtime runs it,
    /// with `env` and `conf` written to its standard input.
    pub fn spawn_plugin(&self, env: &[(&str, &str)], conf: &Value) -> std::process::Child {
        let mut child = Command::new("nsenter")
            .arg(format!("--net={}", self.ns.path.display()))
            .arg(Path::new(&cni_path().unwrap()).join("netkit-cni"))
            .env("CNI_PATH", &self.path)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(conf.to_string().as_bytes()).unwrap();
        child
    }

    /// Runs the plugin with `env` and `conf`: success and its answer.
    pub fn plugin(&self, env: &[(&str, &str)], conf: &Value) -> (bool, Value) {
        let o = self.spawn_plugin(env, conf).wait_with_output().unwrap();
        let text = stdout(&o);
        (o.status.success(), serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// An ADD (`env`: the container's variables) stopped by its fault seam
    /// inside the apply engine, after the pair is made and before the
    /// chain's first program is attached; returned once it says it hangs.
    pub fn hung_add(&self, env: &[(&str, &str)], conf: &Value) -> std::process::Child {
        use std::io::BufRead as _;
        let mut child = self.spawn_plugin(&plugin_env("ADD", Some("apply:attach:1:hang"), env), conf);
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        assert!(lines.any(|l| l.unwrap().contains("hanging in attach")), "the plugin never reached the attach step");
        child
    }

    /// Everything an attachment leaves: netkit and veth devices of the node, pins
    /// under the plugin's bpffs tree, records, host-local allocations.
    pub fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for kind in ["netkit", "veth"] {
            let links = self.ns.ip(&["-j", "link", "show", "type", kind]);
            let links: Value = serde_json::from_slice(&links.stdout).unwrap_or(Value::Null);
            // (An iproute2 that does not know the kind answers `[{}]`.)
            for l in links.as_array().into_iter().flatten().filter(|l| l.get("ifname").is_some()) {
                out.push(format!("device {}", l["ifname"]));
            }
        }
        let files = |root: &Path| -> Vec<String> {
            let o = Command::new("find").arg(root).args(["-type", "f"]).output().unwrap();
            stdout(&o).lines().map(str::to_string).collect()
        };
        out.extend(files(&self.bpffs.path.join("netkit/cni")).into_iter().map(|f| format!("pin {f}")));
        out.extend(files(&self.state_dir()).into_iter().map(|f| format!("record {f}")));
        // host-local keeps one file per allocated address (and a lock and
        // its last reservation, which are not allocations).
        out.extend(
            files(&self.ipam_dir().join("pods"))
                .into_iter()
                .filter(|f| !f.ends_with("/lock") && !f.contains("last_reserved_ip"))
                .map(|f| format!("allocation {f}")),
        );
        out
    }

    /// The pin of link `name` of container `id` (under its own directory).
    pub fn pin(&self, id: &str, name: &str) -> Option<PathBuf> {
        let dir = self.bpffs.path.join("netkit/cni/pods").join(id).join("eth0");
        let o = Command::new("find").arg(&dir).args(["-type", "f", "-name", name]).output().unwrap();
        stdout(&o).lines().next().map(PathBuf::from)
    }

    /// The node's side of pod `result`'s pair.
    pub fn host_of(result: &Value) -> String {
        result["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i.get("sandbox").is_none())
            .map(|i| i["name"].as_str().unwrap().to_string())
            .expect("a host interface in the result")
    }

    pub fn ip_of(result: &Value) -> String {
        let cidr = result["ips"][0]["address"].as_str().unwrap();
        cidr.split('/').next().unwrap().to_string()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn pings(from: &TestNs, to: &str) -> bool {
    from.exec("ping", &["-c", "1", "-W", "2", to]).status.success()
}

pub const FIREWALL_DENIES: &str = "10.22.0.3";

/// The chain every pod gets: a firewall that denies everything the pod at
/// FIREWALL_DENIES sends, so that pod is cut off and the others are not.
pub fn firewall_chain() -> Value {
    json!([{"hook": "peer", "programs": [
        {"name": "fw", "program": "firewall", "rules": [format!("src {FIREWALL_DENIES}/32 deny")]},
    ]}])
}

/// DEL of a vanished pod and of one never added, GC of stale attachments,
/// and an ADD again in a new namespace after one vanished without a DEL;
/// `extra` goes into the configuration beside the firewall chain.
pub fn del_and_gc(node: &Node, extra: Value) {
    let mut conf = json!({"chains": firewall_chain()});
    for (k, v) in extra.as_object().unwrap() {
        conf[k] = v.clone();
    }
    let list = node.conflist(conf);
    let (a, b, c) = (TestNs::pod("cnida"), TestNs::pod("cnidb"), TestNs::pod("cnidc"));
    node.add(&list, "ctr-a", &a);
    node.add(&list, "ctr-b", &b);
    let rc = node.add(&list, "ctr-c", &c);

    // The pod's namespace goes first (its pair with it): DEL still succeeds
    // and releases the address and the pins.
    let a_path = a.path.clone();
    drop(a);
    let o = node.runtime(&["del", &list.display().to_string(), "ctr-a", &a_path.display().to_string(), "eth0"], None);
    assert!(o.status.success(), "DEL of a vanished pod: {}", stdout(&o));
    // DEL of something never added succeeds too.
    let o = node.runtime(&["del", &list.display().to_string(), "ctr-never", "/run/netns/none", "eth0"], None);
    assert!(o.status.success(), "DEL of an unknown container: {}", stdout(&o));

    // GC with only c valid: b's pair, pins, record and address go.
    let o = node.runtime(&["gc", &list.display().to_string(), "ctr-c/eth0"], None);
    assert!(o.status.success(), "GC: {}", stdout(&o));
    let left = node.leftovers();
    assert!(left.iter().all(|l| !l.contains("ctr-b") && !l.contains("10.22.0.3")), "{left:?}");
    assert_eq!(left.iter().filter(|l| l.starts_with("device")).count(), 1, "{left:?}");
    assert!(node.cmd("check", &list, "ctr-c", &c).status.success(), "GC harmed the valid attachment");
    assert_eq!(Node::ip_of(&rc), "10.22.0.4");

    // A container whose namespace vanished without a DEL is added again (in
    // a new namespace): the stale attachment, its address included, is
    // cleared first, so one DEL leaves nothing.
    let d = TestNs::pod("cnidd");
    node.add(&list, "ctr-d", &d);
    drop(d);
    // The kernel removes a namespace's devices (and so the pair) a moment later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while node.leftovers().iter().filter(|l| l.starts_with("device")).count() > 1 {
        assert!(std::time::Instant::now() < deadline, "the vanished pod's pair stayed");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let d2 = TestNs::pod("cnidd2");
    node.add(&list, "ctr-d", &d2);
    assert!(node.cmd("del", &list, "ctr-d", &d2).status.success());

    assert!(node.cmd("del", &list, "ctr-c", &c).status.success());
    assert_eq!(node.leftovers(), Vec::<String>::new());
}

/// The kind of pair `extra` asks for ("netkit" unless it says "veth"): the
/// device type ip lists, and the attach type of its peer hook.
fn kind_of(extra: &Value) -> (&'static str, u32) {
    match extra["kind"].as_str() {
        Some("veth") => ("veth", witness::TCX_INGRESS),
        _ => ("netkit", witness::NETKIT_PEER),
    }
}

/// The plugin's environment for one container, a command and maybe a fault.
fn plugin_env<'a>(command: &'a str, fault: Option<&'a str>, env: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![("CNI_COMMAND", command)];
    v.extend_from_slice(env);
    if let Some(f) = fault {
        v.push(("NETKIT_FAULT", f));
    }
    v
}

/// The plugin killed (SIGKILL, by its own fault seam) at `fault`.
fn killed(node: &Node, env: &[(&str, &str)], command: &str, fault: &str, conf: &Value) {
    use std::os::unix::process::ExitStatusExt as _;
    let o = node.spawn_plugin(&plugin_env(command, Some(fault), env), conf).wait_with_output().unwrap();
    assert_eq!(o.status.signal(), Some(libc::SIGKILL), "{command} {fault}: {}", super::stderr(&o));
}

/// An ADD killed at each of its steps, then the runtime's DEL: nothing is
/// left; a DEL killed right after it deleted the pair, then DEL again: the
/// same. `extra` goes into the configuration beside the firewall chain.
pub fn killed_at_any_step_then_del(node: &Node, extra: Value) {
    let mut conf = node.netkit_conf("1.1.0", extra);
    conf["chains"] = firewall_chain();
    let pod = TestNs::pod("cnixa");
    let pod_path = pod.path.display().to_string();
    let env = [("CNI_CONTAINERID", "ctr-x"), ("CNI_NETNS", pod_path.as_str()), ("CNI_IFNAME", "eth0")];
    for fault in [
        "cni:ipam:kill",
        "apply:record:1:kill-after",
        "apply:create:1:kill-after",
        "apply:attach:1:kill-after",
        "apply:pin:1:kill-after",
        "apply:record:2:kill",
        "cni:pair:kill",
    ] {
        killed(node, &env, "ADD", fault, &conf);
        let (ok, e) = node.plugin(&plugin_env("DEL", None, &env), &conf);
        assert!(ok, "DEL after ADD killed at {fault}: {e}");
        assert_eq!(node.leftovers(), Vec::<String>::new(), "after ADD killed at {fault}");
    }
    let (ok, e) = node.plugin(&plugin_env("ADD", None, &env), &conf);
    assert!(ok, "{e}");
    killed(node, &env, "DEL", "cni:del-pair:kill", &conf);
    let (ok, e) = node.plugin(&plugin_env("DEL", None, &env), &conf);
    assert!(ok, "the second DEL: {e}");
    assert_eq!(node.leftovers(), Vec::<String>::new());
}

/// An ADD killed at each step and retried, as a runtime retries: it
/// completes with what the killed one made (the same pair, the same links,
/// one address), the pod reaches the node, CHECK agrees and DEL leaves
/// nothing. An ADD killed after it answered answers the same again. What is
/// there but not as `mismatch` configures is refused and left to DEL.
pub fn retried_after_a_kill(node: &Node, extra: Value, mismatch: Option<Value>) {
    let (kind, peer_hook) = kind_of(&extra);
    node.ns.ip_ok(&["addr", "add", "10.99.0.1/32", "dev", "lo"]);
    let mut conf = node.netkit_conf("1.1.0", extra);
    conf["chains"] = json!([{"hook": "peer", "programs": [
        {"name": "fw", "program": "firewall", "rules": ["dst 10.99.0.9/32 deny"]},
        {"name": "sent", "program": "counter"},
    ]}]);
    let pod = TestNs::pod("cnira");
    let pod_path = pod.path.display().to_string();
    let env = [("CNI_CONTAINERID", "ctr-r"), ("CNI_NETNS", pod_path.as_str()), ("CNI_IFNAME", "eth0")];
    let with = |command, fault| plugin_env(command, fault, &env);
    // The node's view of the attachment: the host side's ifindex and its
    // peer chain's link ids, by ip and BPF_PROG_QUERY.
    let seen = || -> Option<(String, u64, Vec<u64>)> {
        let links = node.ns.ip(&["-j", "link", "show", "type", kind]);
        let links: Value = serde_json::from_slice(&links.stdout).ok()?;
        let host = links.as_array()?.first()?;
        let name = host["ifname"].as_str()?;
        let chain = witness::chain(&node.ns, name, peer_hook);
        Some((name.to_string(), host["ifindex"].as_u64()?, chain.slots.iter().map(|s| s.1).collect()))
    };
    for fault in [
        "cni:ipam:kill",
        "apply:attach:2:kill-after",
        "apply:record:2:kill",
        "cni:pair:kill",
        "cni:address:kill",
        "cni:route:kill",
        "cni:policy:kill",
    ] {
        killed(node, &env, "ADD", fault, &conf);
        let before = seen();
        // The runtime retries: the ADD completes with what is there.
        let (ok, result) = node.plugin(&with("ADD", None), &conf);
        assert!(ok, "ADD retried after a kill at {fault}: {result}");
        let after = seen().expect("the attachment exists");
        if let Some((_, ifindex, links)) = before {
            assert_eq!(after.1, ifindex, "the pair was re-created after a kill at {fault}");
            assert_eq!(after.2[..links.len()], links[..], "a link was re-created after a kill at {fault}");
        }
        assert_eq!(after.2.len(), 2, "{fault}");
        assert_eq!(Node::host_of(&result), after.0, "{fault}");
        let ip = Node::ip_of(&result);
        let on_pod = stdout(&pod.ip(&["-4", "-o", "addr", "show", "dev", "eth0"]));
        assert_eq!(on_pod.matches(" inet ").count(), 1, "one address on the pod after {fault}: {on_pod}");
        assert!(on_pod.contains(&format!("inet {ip}/24")), "{on_pod}");
        // Open to traffic once its chain is attached: netkit's peer policy
        // forwards, a veth's host end is up.
        let host = node.ns.ip_link(&Node::host_of(&result));
        match kind {
            "netkit" => assert_eq!(host["linkinfo"]["info_data"]["peer_policy"], "forward", "{fault}: {host}"),
            _ => assert!(host["flags"].as_array().unwrap().iter().any(|f| f == "UP"), "{fault}: {host}"),
        }
        assert!(udp_delivers(&pod, &node.ns, "10.99.0.1"), "the pod cannot reach the node after the retry of {fault}");
        let allocations = std::fs::read_dir(node.ipam_dir().join("pods")).unwrap().flatten();
        let allocations: Vec<_> =
            allocations.filter(|f| f.file_name().to_string_lossy().starts_with("10.")).map(|f| f.file_name()).collect();
        assert_eq!(allocations.len(), 1, "one allocation after {fault}: {allocations:?}");
        // CHECK agrees with the result the retry gave.
        let mut checked = conf.clone();
        checked["prevResult"] = result.clone();
        let (ok, e) = node.plugin(&with("CHECK", None), &checked);
        assert!(ok, "CHECK after the retry of {fault}: {e}");
        let (ok, e) = node.plugin(&with("DEL", None), &conf);
        assert!(ok, "DEL: {e}");
        assert_eq!(node.leftovers(), Vec::<String>::new(), "after the retry of {fault}");
    }

    // Killed after it answered: the retry answers the same.
    let (ok, first) = node.plugin(&with("ADD", None), &conf);
    assert!(ok, "{first}");
    let made = seen();
    let (ok, again) = node.plugin(&with("ADD", None), &conf);
    assert!(ok, "{again}");
    assert_eq!((again, seen()), (first, made));
    let (ok, e) = node.plugin(&with("DEL", None), &conf);
    assert!(ok, "{e}");

    let Some(mismatch) = mismatch else { return };
    killed(node, &env, "ADD", "cni:pair:kill", &conf);
    let made = seen();
    let mut other = conf.clone();
    for (k, v) in mismatch.as_object().unwrap() {
        other[k] = v.clone();
    }
    let (ok, e) = node.plugin(&with("ADD", None), &other);
    assert!(!ok);
    assert_eq!(e["code"], 100, "{e}");
    let details = e["details"].as_str().unwrap();
    let setting = mismatch.as_object().unwrap().keys().next().unwrap();
    assert!(details.contains("not as configured") && details.contains(setting.as_str()), "{e}");
    assert_eq!(seen(), made, "a refused retry touches nothing");
    let (ok, e) = node.plugin(&with("DEL", None), &conf);
    assert!(ok, "{e}");
    assert_eq!(node.leftovers(), Vec::<String>::new());
}
