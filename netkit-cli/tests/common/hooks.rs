//! A device pair with a pod namespace and a private bpffs, and the hook cases
//! shared by the tcx and netkit suites: every case runs against a real kernel
//! through the `netkit` binary and checks the chain it leaves behind.
#![allow(dead_code)]

use std::{
    io::{BufRead as _, BufReader},
    os::fd::{AsFd as _, OwnedFd},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use netkit::bpf;
use netkit::mprog::{Anchor, Hook, HookRef};
use serde_json::Value;

use super::{Bpffs, TestNs, skip, stderr, stdout, udp_delivers, witness};

pub const HOST_IP: &str = "10.66.0.1";
pub const POD_IP: &str = "10.66.0.2";
pub const HOST_IP6: &str = "fd66::1";
pub const POD_IP6: &str = "fd66::2";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pair {
    Veth,
    Netkit,
}

/// `dev` lives in `ns` and is the device whose hooks are tested; `peer` is
/// its other end inside `pod`. Addresses are configured and both ends are up.
pub struct HookEnv {
    pub ns: TestNs,
    pub pod: TestNs,
    pub bpffs: Bpffs,
    pub dev: String,
    pub peer: String,
    pub pair: Pair,
}

/// One slot of a chain: the program and the link that owns it (None: plain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub prog: u64,
    pub link: Option<u64>,
}

/// One slot as the tool's `query -j` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub slot: Slot,
    pub pin: Option<String>,
}

impl HookEnv {
    /// A veth pair where the kernel has veth (the host, and the VM, which
    /// loads its kernel's veth module at boot), else a netkit pair.
    pub fn tcx(tag: &str) -> Self {
        Self::tcx_with(tag, true)
    }

    /// As [`HookEnv::tcx`], with IPv6 off in both namespaces when `ipv6` is
    /// false (for exact packet counts).
    pub fn tcx_with(tag: &str, ipv6: bool) -> Self {
        let ns = TestNs::new(tag);
        let pod = TestNs::pod(&format!("{tag}p"));
        if !ipv6 {
            ns.disable_ipv6();
            pod.disable_ipv6();
        }
        let veth = ns.ip(&["link", "add", "dev0", "type", "veth", "peer", "name", "eth0", "netns", &pod.name]);
        let pair = if veth.status.success() {
            Pair::Veth
        } else {
            ns.ok(&["device", "add", "dev0", "--peer", "eth0", "--peer-netns", &pod.name]);
            Pair::Netkit
        };
        Self::finish(ns, pod, pair)
    }

    /// A netkit pair (primary `dev0` here, peer `eth0` in the pod), created
    /// with extra `device add` options.
    pub fn netkit(tag: &str, options: &[&str]) -> Self {
        let ns = TestNs::new(tag);
        let pod = TestNs::pod(&format!("{tag}p"));
        let mut args = vec!["device", "add", "dev0", "--peer", "eth0", "--peer-netns", &pod.name];
        args.extend_from_slice(options);
        ns.ok(&args);
        Self::finish(ns, pod, Pair::Netkit)
    }

    fn finish(ns: TestNs, pod: TestNs, pair: Pair) -> Self {
        // In a real node the two ends never share an ifindex; a test where
        // they do cannot tell one from the other.
        let (dev_index, peer_index) = (ns.ifindex_of("dev0"), pod.ifindex_of("eth0"));
        assert_ne!(dev_index, peer_index, "the fixture must give dev0 and the pod's eth0 different ifindexes");
        ns.ip_ok(&["link", "set", "dev0", "up"]);
        pod.ip_ok(&["link", "set", "eth0", "up"]);
        ns.ip_ok(&["addr", "add", &format!("{HOST_IP}/24"), "dev", "dev0"]);
        pod.ip_ok(&["addr", "add", &format!("{POD_IP}/24"), "dev", "eth0"]);
        Self { ns, pod, bpffs: Bpffs::new(), dev: "dev0".into(), peer: "eth0".into(), pair }
    }

    /// Adds IPv6 addresses to both ends.
    pub fn add_ipv6(&self) {
        self.ns.ip_ok(&["-6", "addr", "add", &format!("{HOST_IP6}/64"), "dev", "dev0"]);
        self.pod.ip_ok(&["-6", "addr", "add", &format!("{POD_IP6}/64"), "dev", "eth0"]);
    }

    pub fn args<'a>(&'a self, args: &[&'a str]) -> Vec<String> {
        let mut a: Vec<String> = vec!["-n".into(), self.ns.name.clone(), "--bpffs".into(), self.bpffs.arg()];
        a.extend(args.iter().map(|s| s.to_string()));
        a
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = super::netkit();
        c.args(self.args(args));
        c
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().expect("netkit runs")
    }

    /// `netkit ARGS`, expecting success.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "netkit {args:?} failed:\n{}{}", stdout(&o), stderr(&o));
        stdout(&o)
    }

    /// `netkit ARGS`, expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(!o.status.success(), "netkit {args:?} should have failed:\n{}", stdout(&o));
        stderr(&o)
    }

    /// `netkit -j ARGS` as JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["-j"];
        a.extend_from_slice(args);
        let text = self.ok(&a);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{a:?}: no JSON ({e}): {text}"))
    }

    /// Attaches `prog` to `hook` with `extra` options; returns the outcome.
    pub fn attach(&self, hook: Hook, prog: &str, extra: &[&str]) -> Value {
        let mut a = vec!["attach", self.dev.as_str(), hook.name(), prog];
        a.extend_from_slice(extra);
        self.json(&a)
    }

    /// (revision, slots) of a hook as the kernel reports them, read by the
    /// witness (the test's own BPF_PROG_QUERY), never by the tool.
    pub fn chain(&self, hook: Hook) -> (u64, Vec<Slot>) {
        let c = witness::chain(&self.ns, &self.dev, witness::attach_type(hook.name()));
        let slots = c.slots.iter().map(|&(prog, link)| Slot { prog, link: (link != 0).then_some(link) }).collect();
        (c.revision, slots)
    }

    /// (revision, slots with pins) of a hook through `netkit query -j`, for
    /// tests of the tool's output; checked against the witness each time.
    pub fn query(&self, hook: Hook) -> (u64, Vec<Shown>) {
        let v = self.json(&["query", &self.dev, hook.name()]);
        let h = &v.as_array().expect("an array of hooks")[0];
        assert_eq!(h["hook"], hook.name());
        let shown: Vec<Shown> = h["programs"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, p)| {
                assert_eq!(p["position"], i + 1);
                Shown {
                    slot: Slot { prog: p["prog_id"].as_u64().unwrap(), link: p["link_id"].as_u64() },
                    pin: p["pin"].as_str().map(String::from),
                }
            })
            .collect();
        let revision = h["revision"].as_u64().unwrap();
        let kernel = self.chain(hook);
        assert_eq!(
            (revision, shown.iter().map(|s| s.slot.clone()).collect::<Vec<_>>()),
            kernel,
            "query -j vs the kernel"
        );
        (revision, shown)
    }

    pub fn progs(&self, hook: Hook) -> Vec<u64> {
        self.chain(hook).1.into_iter().map(|s| s.prog).collect()
    }

    pub fn ifindex(&self) -> u32 {
        let v = self.json(&["device", "show", &self.dev]);
        v["ifindex"].as_u64().unwrap() as u32
    }

    /// Sends traffic that crosses `hook` of `dev` and says whether it arrived:
    /// ingress and peer carry pod -> host, egress and primary host -> pod.
    pub fn traffic(&self, hook: Hook) -> bool {
        match hook {
            Hook::Ingress | Hook::Peer => udp_delivers(&self.pod, &self.ns, HOST_IP),
            Hook::Egress | Hook::Primary => udp_delivers(&self.ns, &self.pod, POD_IP),
            other => panic!("no traffic test for hook {other}"),
        }
    }

    /// Calls `f` until it is true or 10 s pass (link release is deferred in
    /// the kernel).
    pub fn eventually(&self, what: &str, mut f: impl FnMut() -> bool) {
        let end = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < end, "timed out waiting for: {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Reads the value at `key` of the array map named `map` of program
/// `prog_id`, through aya's typed array (which checks the key and value
/// sizes against the map's before reading).
pub fn array_value<V: aya::Pod>(prog_id: u64, map: &str, key: u32) -> V {
    let maps = bpf::prog_maps(prog_id as u32).expect("program maps");
    let (info, _) =
        maps.iter().find(|(i, _)| i.name() == map).unwrap_or_else(|| panic!("program {prog_id} has no map {map}"));
    let data = aya::maps::MapData::from_id(info.id).expect("opening the map");
    let array = aya::maps::Array::<_, V>::try_from(aya::maps::Map::Array(data))
        .unwrap_or_else(|e| panic!("{map} is not an array of that value size: {e}"));
    array.get(&key, 0).unwrap_or_else(|e| panic!("reading {map}[{key}]: {e}"))
}

pub fn map_u32(prog_id: u64, map: &str, key: u32) -> u32 {
    array_value(prog_id, map, key)
}

pub fn map_u64(prog_id: u64, map: &str, key: u32) -> u64 {
    array_value(prog_id, map, key)
}

/// A minimal sched_cls program (returns `verdict`), loaded in this process.
pub fn raw_program(verdict: i32) -> OwnedFd {
    bpf::prog_load_sched_cls("nk_test", &bpf::insns_return(verdict)).expect("loading a test program")
}

pub fn prog_id(fd: &OwnedFd) -> u64 {
    u64::from(bpf::prog_info(fd.as_fd()).unwrap().0.id)
}

/// The C test object (tests/c/tcx_count.c), prebuilt by `cargo xtask test`
/// ($NETKIT_TEST_C_DIR) or built here with clang when it is installed.
pub fn c_object() -> Option<PathBuf> {
    c_object_named("tcx_count")
}

/// The C test object tests/c/NAME.c, prebuilt or built here (see `c_object`).
pub fn c_object_named(name: &str) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("NETKIT_TEST_C_DIR") {
        let p = PathBuf::from(dir).join(format!("{name}.o"));
        if p.is_file() {
            return Some(p);
        }
    }
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/c/{name}.c"));
    let out = std::env::temp_dir().join(format!("netkit-{name}-{}.o", std::process::id()));
    let ok = Command::new("clang-22")
        .args(["-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(out)
}

/// A `netkit run` in the background, with its first output line.
pub struct Running {
    pub child: Child,
    pub first_line: String,
}

impl HookEnv {
    pub fn spawn_run(&self, hook: Hook, prog: &str) -> Running {
        let mut child = self
            .command(&["run", &self.dev, hook.name(), prog])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("netkit run starts");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(out).lines();
            let _ = tx.send(lines.next().and_then(Result::ok).unwrap_or_default());
            for _ in lines {}
        });
        let first_line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        if first_line.is_empty() {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("netkit run printed nothing: {}", stderr(&out));
        }
        Running { child, first_line }
    }
}

// ------------------------------------------------------------------ cases

/// first/last, before/after by prog id, link id, pin path and pin name;
/// positions and revisions as the kernel's rules say; and packets cross the
/// chain in the order the query shows.
pub fn ordering(env: &HookEnv, hook: Hook) {
    let (rev0, slots) = env.chain(hook);
    assert!(slots.is_empty());
    let a = env.attach(hook, "order", &["--pin", "a"]);
    assert_eq!(a["position"], 1);
    assert_eq!(a["revision"], rev0 + 1, "one attach, one revision");
    let b = env.attach(hook, "order", &["--first"]);
    let c = env.attach(hook, "order", &["--after", &format!("link:{}", b["link_id"])]);
    let d = env.attach(hook, "order", &["--before", &format!("pin:{}", a["pin"].as_str().unwrap())]);
    let e = env.attach(hook, "order", &["--after", &format!("prog:{}", a["prog_id"])]);
    let f = env.attach(hook, "order", &["--before", c["pin"].as_str().unwrap().rsplit('/').next().unwrap()]);
    let g = env.attach(hook, "order", &["--last"]);
    let expected: Vec<u64> = [&b, &f, &c, &d, &a, &e, &g].iter().map(|o| o["prog_id"].as_u64().unwrap()).collect();
    let (rev, slots) = env.chain(hook);
    assert_eq!(rev, rev0 + 7, "seven attaches, seven revisions");
    assert_eq!(slots.iter().map(|s| s.prog).collect::<Vec<_>>(), expected);
    let (_, shown) = env.query(hook);
    for o in [&b, &f, &c, &d, &a, &e, &g] {
        let slot = slots.iter().find(|s| s.prog == o["prog_id"].as_u64().unwrap()).unwrap();
        assert_eq!(slot.link, o["link_id"].as_u64(), "the kernel names the owning link");
        let row = shown.iter().find(|s| &s.slot == slot).unwrap();
        assert_eq!(row.pin.as_deref(), o["pin"].as_str(), "the query names our pin");
    }
    assert!(env.traffic(hook), "order programs hand every packet on");
    // Each program adds one to the mark the one before it handed on, so on
    // the last packet through the chain the k-th wrote (its mark on entry)
    // + k. That mark is 0 for the test's datagram, but the last packet may
    // be another the kernel sent with a mark of its own (seen once on 6.18
    // under TCG: 212 on an egress hook): the steps, not the values, show the order.
    let seen: Vec<u32> = expected.iter().map(|prog| map_u32(*prog, "ORDER", 0)).collect();
    for (i, prog) in expected.iter().enumerate() {
        assert_eq!(
            seen[i].wrapping_sub(seen[0]),
            i as u32,
            "program {prog} ran at position {} (marks written: {seen:?})",
            i + 1
        );
        assert!(map_u32(*prog, "ORDER", 1) > 0);
    }
}

/// Every refusal is explained and leaves the chain as it was.
pub fn refusals_leave_the_chain_alone(env: &HookEnv, hook: Hook) {
    let a = env.attach(hook, "pass", &["--pin", "a"]);
    let b = env.attach(hook, "next", &["--plain", "--first"]);
    assert!(b["link_id"].is_null(), "a plain attachment has no link");
    let before = env.chain(hook);
    let h = hook.name();
    let dev = env.dev.as_str();
    let loose = raw_program(0);
    let loose_id = prog_id(&loose).to_string();
    let not_elf = std::env::temp_dir().join(format!("netkit-not-elf-{}", std::process::id()));
    std::fs::write(&not_elf, "not an ELF object\n").unwrap();
    let not_elf = format!("file:{}", not_elf.display());
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["attach".into(), dev.into(), h.into(), format!("id:{}", a["prog_id"])], "already on"),
        (
            vec![
                "attach".into(),
                dev.into(),
                h.into(),
                "pass".into(),
                "--expected-revision".into(),
                (before.0 - 1).to_string(),
            ],
            "expected revision",
        ),
        (
            vec!["attach".into(), dev.into(), h.into(), "pass".into(), "--before".into(), format!("prog:{loose_id}")],
            "is not attached",
        ),
        (
            vec!["attach".into(), dev.into(), h.into(), "pass".into(), "--after".into(), "link:999999".into()],
            "no link with id 999999",
        ),
        (
            vec!["attach".into(), dev.into(), h.into(), "pass".into(), "--after".into(), "nosuchpin".into()],
            "no link named `nosuchpin`",
        ),
        (vec!["detach".into(), dev.into(), h.into(), format!("prog:{}", a["prog_id"])], "owned by link"),
        (vec!["detach".into(), dev.into(), h.into(), format!("prog:{loose_id}")], "is not attached"),
        (
            vec![
                "attach".into(),
                dev.into(),
                h.into(),
                "next".into(),
                "--plain".into(),
                "--replace".into(),
                format!("prog:{}", a["prog_id"]),
            ],
            "owned by",
        ),
        (
            vec![
                "update".into(),
                dev.into(),
                h.into(),
                "a".into(),
                "next".into(),
                "--expected-old".into(),
                format!("prog:{loose_id}"),
            ],
            "no longer runs",
        ),
        (
            vec!["update".into(), dev.into(), h.into(), format!("prog:{}", b["prog_id"]), "pass".into()],
            "names a program",
        ),
        (vec!["attach".into(), dev.into(), h.into(), not_elf.clone()], "not a BPF ELF object"),
        (vec!["attach".into(), dev.into(), h.into(), "file:/nonexistent/x.o".into()], "cannot read /nonexistent/x.o"),
        (vec!["attach".into(), dev.into(), h.into(), "nosuchprog".into()], "no bundled program named"),
        (vec!["attach".into(), dev.into(), h.into(), "id:4000000000".into()], "no loaded program with id"),
        (
            vec!["attach".into(), dev.into(), h.into(), "pass".into(), "--before".into(), "prog:x".into()],
            "not a valid REF",
        ),
        (
            vec!["attach".into(), dev.into(), h.into(), "pass".into(), "--first".into(), "--last".into()],
            "cannot be used with",
        ),
        (vec!["attach".into(), dev.into(), h.into(), "pass".into(), "--replace".into(), "prog:1".into()], "--plain"),
        (
            vec!["attach".into(), dev.into(), h.into(), "pass".into(), "--plain".into(), "--pin".into(), "x".into()],
            "--pin names a link",
        ),
        (
            vec![
                "attach".into(),
                dev.into(),
                h.into(),
                "pass".into(),
                "--plain".into(),
                "--replace".into(),
                "link:1".into(),
            ],
            "--replace takes prog:ID or pin:PATH",
        ),
        (
            vec![
                "attach".into(),
                dev.into(),
                h.into(),
                "pass".into(),
                "--plain".into(),
                "--replace".into(),
                "prog:1".into(),
                "--first".into(),
            ],
            "the replaced program's slot",
        ),
        (vec!["attach".into(), dev.into(), h.into(), "pass".into(), "--pin".into(), "a".into()], "already pinned"),
        (vec!["attach".into(), dev.into(), "sideways".into(), "pass".into()], "invalid value 'sideways'"),
        (vec!["attach".into(), "nosuchdev".into(), h.into(), "pass".into()], "no device named `nosuchdev`"),
    ];
    for (args, says) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = env.fails(&args);
        assert!(err.contains(says), "{args:?}: expected {says:?} in: {err}");
        assert_eq!(env.chain(hook), before, "{args:?} changed the chain");
    }
    if let Some(obj) = c_object() {
        let obj = obj.display().to_string();
        for (spec, says) in [
            (format!("file:{obj}:nosuch"), "count_egress, count_ingress, count_peer, count_primary, count_tc"),
            (format!("file:{obj}:not_for_tc"), "is a xdp program"),
            (format!("file:{obj}"), "several sched_cls programs"),
        ] {
            let err = env.fails(&["attach", dev, h, &spec]);
            assert!(err.contains(says), "{spec}: {err}");
            assert_eq!(env.chain(hook), before);
        }
    } else {
        skip("no clang-22 and no prebuilt C objects: the file: refusals were not checked");
    }
    drop(loose);
}

/// Plain attachments: replace takes the slot; link update keeps the slot and
/// the link id; detaching a plain program and a link by every kind of REF.
pub fn replace_update_and_detach(env: &HookEnv, hook: Hook) {
    let h = hook.name();
    let dev = env.dev.as_str();
    let a = env.attach(hook, "next", &["--pin", "a"]);
    let p = env.attach(hook, "next", &["--plain"]);
    env.attach(hook, "next", &["--pin", "c"]);
    let (rev, _) = env.chain(hook);
    let r = env.attach(hook, "pass", &["--plain", "--replace", &format!("prog:{}", p["prog_id"])]);
    assert_eq!(r["position"], 2, "the replacement takes the replaced program's slot");
    assert_eq!(r["revision"], rev + 1);
    assert!(!env.progs(hook).contains(&p["prog_id"].as_u64().unwrap()), "the replaced program is gone");

    let u = env.json(&["update", dev, h, "a", "drop", "--expected-old", &format!("prog:{}", a["prog_id"])]);
    assert_eq!(u["link_id"], a["link_id"], "update keeps the link");
    assert_eq!(u["position"], 1, "update keeps the position");
    assert_eq!(u["revision"], rev + 2);
    let (_, slots) = env.chain(hook);
    assert_eq!(slots[0].prog, u["prog_id"].as_u64().unwrap());
    assert_eq!(slots[0].link, a["link_id"].as_u64());
    // Updating to the program it already runs changes nothing.
    let same = env.json(&["update", dev, h, &format!("link:{}", a["link_id"]), &format!("id:{}", u["prog_id"])]);
    assert_eq!(same["revision"], rev + 2, "a link update to the same program is no change");

    env.json(&["detach", dev, h, &format!("prog:{}", r["prog_id"])]);
    let d = env.json(&["detach", dev, h, "c"]);
    assert!(!std::path::Path::new(d["pin"].as_str().unwrap()).exists(), "detach removes our pin");
    let left = env.json(&["detach", dev, h, &format!("pin:{}", a["pin"].as_str().unwrap())]);
    // tcx frees an empty hook, so its revision starts over; netkit keeps
    // counting but an empty hook's query reports 1 all the same.
    assert_eq!(left["revision"], 1);
    assert!(env.chain(hook).1.is_empty());
    assert!(env.json(&["link", "list"]).as_array().unwrap().is_empty(), "no pins left behind");
}

/// 63 programs fit, the 64th is refused (ERANGE), and the query of a chain
/// longer than its initial buffer (ENOSPC, retried) returns every slot.
pub fn capacity(env: &HookEnv, hook: Hook) {
    // Fill 62 slots from this process (fast), inside the test namespace
    // where the ifindex means dev0; the 63rd and 64th go through the binary.
    let href = HookRef::new(env.ifindex(), hook);
    let held = env.ns.within(move || {
        (0..62)
            .map(|_| {
                let prog = raw_program(-1);
                let link = href.attach_link(prog.as_fd(), &Anchor::Last, None).expect("room on the hook");
                (prog, link)
            })
            .collect::<Vec<_>>()
    });
    let last = env.attach(hook, "next", &[]);
    assert_eq!(last["position"], 63);
    let (rev, slots) = env.chain(hook);
    assert_eq!(slots.len(), 63, "the query returns all 63 slots");
    assert_eq!(env.ns.within(move || href.query().unwrap().slots.len()), 63);
    let err = env.fails(&["attach", &env.dev, hook.name(), "next"]);
    assert!(err.contains("at most 63 programs"), "{err}");
    assert_eq!(env.chain(hook).0, rev, "the refused 64th attach changed nothing");
    assert!(env.traffic(hook), "63 NEXT programs hand the packet on");
    drop(held);
    env.eventually("the test's links to be released", || env.chain(hook).1.len() == 1);
}

/// Concurrent writers without --expected-revision all get in: each re-reads
/// the revision and retries on ESTALE.
pub fn concurrent_writers(env: &HookEnv, hook: Hook) {
    let start = env.chain(hook).1.len();
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let args = env.args(&[
                "-j",
                "attach",
                &env.dev,
                hook.name(),
                "next",
                if i % 2 == 0 { "--first" } else { "--last" },
            ]);
            std::thread::spawn(move || super::netkit().args(args).output().unwrap())
        })
        .collect();
    for h in handles {
        let out = h.join().unwrap();
        assert!(out.status.success(), "a concurrent attach failed: {}", stderr(&out));
    }
    assert_eq!(env.chain(hook).1.len(), start + 6);
}

/// `netkit run`: attached while it runs, detached by the kernel when it ends,
/// on SIGTERM as on SIGKILL.
pub fn run_detaches_with_the_process(env: &HookEnv, hook: Hook) {
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        let mut r = env.spawn_run(hook, "pass");
        assert!(r.first_line.contains("not pinned"), "{}", r.first_line);
        let (_, shown) = env.query(hook);
        assert_eq!(shown.len(), 1);
        assert!(shown[0].slot.link.is_some() && shown[0].pin.is_none(), "run holds an unpinned link");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(r.child.id() as i32, signal) };
        let status = r.child.wait().unwrap();
        if signal == libc::SIGTERM {
            assert!(status.success(), "run exits cleanly on SIGTERM");
        }
        env.eventually("the kernel to detach the link of the ended process", || env.chain(hook).1.is_empty());
    }
}

/// Links another tool owns are refused unless --force, naming the holder.
pub fn ownership_guard(env: &HookEnv, hook: Hook) {
    let mut r = env.spawn_run(hook, "pass");
    let (_, slots) = env.chain(hook);
    let link = format!("link:{}", slots[0].link.unwrap());
    let err = env.fails(&["detach", &env.dev, hook.name(), &link]);
    assert!(err.contains("not pinned by netkit") && err.contains(&format!("process {}", r.child.id())), "{err}");
    let err = env.fails(&["update", &env.dev, hook.name(), &link, "drop"]);
    assert!(err.contains("--force"), "{err}");
    assert_eq!(env.chain(hook).1.len(), 1);
    env.ok(&["detach", &env.dev, hook.name(), &link, "--force"]);
    assert!(env.chain(hook).1.is_empty(), "--force detaches it");
    let _ = r.child.kill();
    let _ = r.child.wait();
}

/// A pinned link whose link was detached is defunct: update says so (ENOLINK).
pub fn defunct_link_update(env: &HookEnv, hook: Hook) {
    let a = env.attach(hook, "pass", &["--pin", "gone"]);
    let (fd, _) = netkit::pins::open_link(std::path::Path::new(a["pin"].as_str().unwrap())).unwrap();
    netkit::mprog::detach_link(fd.as_fd()).unwrap();
    let list = env.json(&["link", "list"]);
    assert_eq!(list[0]["state"], "defunct");
    let err = env.fails(&["update", &env.dev, hook.name(), "gone", "next"]);
    assert!(err.contains("defunct") && err.contains("netkit link prune"), "{err}");
    let pruned = env.json(&["link", "prune"]);
    assert_eq!(pruned.as_array().unwrap().len(), 1);
}

/// Deleting the device makes pinned links defunct; list shows it, prune
/// removes the pins.
pub fn device_deletion(env: &HookEnv, hooks: &[Hook], delete: impl FnOnce()) {
    for (i, hook) in hooks.iter().enumerate() {
        env.attach(*hook, "pass", &["--pin", &format!("l{i}")]);
    }
    let list = env.json(&["link", "list"]);
    assert!(list.as_array().unwrap().iter().all(|l| l["state"] == "attached"));
    delete();
    let list = env.json(&["link", "list"]);
    assert_eq!(list.as_array().unwrap().len(), hooks.len());
    for l in list.as_array().unwrap() {
        assert_eq!(l["state"], "defunct", "{l}");
        assert_eq!(l["ifindex"], 0);
        assert_eq!(l["device"], env.dev.as_str());
    }
    let shown = env.json(&["link", "show", "l0"]);
    assert_eq!(shown["state"], "defunct");
    let pruned = env.json(&["link", "prune"]);
    assert_eq!(pruned.as_array().unwrap().len(), hooks.len());
    assert!(env.json(&["link", "list"]).as_array().unwrap().is_empty());
    let leftovers: Vec<_> = walk(&env.bpffs.path.join("netkit/links"));
    assert!(leftovers.is_empty(), "prune leaves no pins: {leftovers:?}");
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// A clang-built object with libbpf section names attaches and runs.
pub fn clang_object_runs(env: &HookEnv, hook: Hook) {
    let Some(obj) = c_object() else {
        skip("no clang-22 and no prebuilt C objects: the clang object was not attached");
        return;
    };
    let func = match hook {
        Hook::Ingress => "count_ingress",
        Hook::Egress => "count_egress",
        Hook::Primary => "count_primary",
        Hook::Peer => "count_peer",
        other => panic!("no C program for hook {other}"),
    };
    let o = env.attach(hook, &format!("file:{}:{func}", obj.display()), &[]);
    assert_eq!(o["prog_name"], func.chars().take(15).collect::<String>());
    assert!(env.traffic(hook), "the C program returns TCX_NEXT");
    assert!(map_u64(o["prog_id"].as_u64().unwrap(), "packets", 0) >= 1, "the C program counted the packets");
    // The legacy "tc" section works on any of these hooks too.
    env.attach(hook, &format!("file:{}:count_tc", obj.display()), &[]);
}

/// Plain programs removed by position (first, last, before/after an anchor),
/// and a named one checked against a position; a link's slot, an empty
/// position and a disagreeing position are refused with the chain unchanged.
pub fn positional_detach(env: &HookEnv, hook: Hook) {
    let h = hook.name();
    let dev = env.dev.as_str();
    let id = |v: &Value| v["prog_id"].as_u64().unwrap();
    let p1 = id(&env.attach(hook, "next", &["--plain"]));
    let l = env.attach(hook, "next", &["--pin", "l"]);
    let p3 = id(&env.attach(hook, "next", &["--plain"]));
    let p4 = id(&env.attach(hook, "next", &["--plain"]));
    let p5 = id(&env.attach(hook, "next", &["--plain"]));
    let all = vec![p1, id(&l), p3, p4, p5];
    let (rev, _) = env.chain(hook);
    let prog = |p: u64| format!("prog:{p}");

    let err = env.fails(&["detach", dev, h, "--before", &prog(p1)]);
    assert!(err.contains("no program sits before"), "the kernel would take the first one itself: {err}");
    let err = env.fails(&["detach", dev, h, "--after", &prog(p5)]);
    assert!(err.contains("no program sits after"), "{err}");
    let err = env.fails(&["detach", dev, h, "--after", &prog(p1)]);
    assert!(err.contains(&format!("owned by link {}", l["link_id"])), "{err}");
    let err = env.fails(&["detach", dev, h, "--first", "l"]);
    assert!(err.contains("a link is detached by naming it"), "{err}");
    let err = env.fails(&["detach", dev, h]);
    assert!(err.contains("detach needs REF"), "{err}");
    let err = env.fails(&["detach", dev, h, &prog(p3), "--first"]);
    assert!(err.contains("conflicts"), "the kernel checks the named program against the position: {err}");
    assert_eq!(env.chain(hook).0, rev, "refusals change nothing");
    assert_eq!(env.progs(hook), all);

    let d = env.json(&["detach", dev, h, "--last"]);
    assert!(d["action"].as_str().unwrap().contains(&format!("program {p5}")), "{d}");
    assert_eq!(d["revision"], rev + 1);
    env.json(&["detach", dev, h, &prog(p3), "--after", "l"]);
    let d = env.json(&["detach", dev, h, "--after", "l"]);
    assert!(d["action"].as_str().unwrap().contains(&format!("program {p4}")), "{d}");
    let d = env.json(&["detach", dev, h, "--first"]);
    assert!(d["action"].as_str().unwrap().contains(&format!("program {p1}")), "{d}");
    assert_eq!(env.progs(hook), vec![id(&l)], "only the link is left");
    let err = env.fails(&["detach", dev, h, "--first"]);
    assert!(err.contains("owned by link"), "{err}");
    env.json(&["detach", dev, h, "l"]);
    let err = env.fails(&["detach", dev, h, "--last"]);
    assert!(err.contains("nothing to detach"), "{err}");
}

/// Expands `$then!` with its arguments followed by every shared hook case
/// (`test name => case`), so each suite lists the cases once.
#[macro_export]
macro_rules! each_hook_case {
    ($then:ident ( $($args:tt)* )) => {
        $then! { $($args)* ;
            ordering_follows_anchors_and_packets_follow_the_query => $crate::common::hooks::ordering,
            refusals_are_explained_and_change_nothing => $crate::common::hooks::refusals_leave_the_chain_alone,
            replace_update_and_detach_keep_slots => $crate::common::hooks::replace_update_and_detach,
            plain_programs_are_detached_by_position => $crate::common::hooks::positional_detach,
            sixty_three_programs_fit_the_sixty_fourth_is_refused => $crate::common::hooks::capacity,
            concurrent_writers_all_get_in => $crate::common::hooks::concurrent_writers,
            run_is_detached_when_the_process_ends => $crate::common::hooks::run_detaches_with_the_process,
            links_of_other_tools_need_force => $crate::common::hooks::ownership_guard,
            a_defunct_link_cannot_be_updated => $crate::common::hooks::defunct_link_update,
            a_clang_object_attaches_and_runs => $crate::common::hooks::clang_object_runs,
        }
    };
}

/// A module of tests on one hook, one per case: each checks `$gate`, makes
/// its own environment with `$env` and runs the case on `$hook`.
#[macro_export]
macro_rules! hook_tests {
    ($gate:ident, $module:ident, $hook:expr, $env:expr ; $($name:ident => $case:path),* $(,)?) => {
        mod $module {
            use super::*;
            $(
                #[test]
                fn $name() {
                    $gate!();
                    let env = $env;
                    $case(&env, $hook);
                }
            )*
        }
    };
}

/// A program that calls bpf_redirect_peer (the bundled `redirect-peer`, and
/// a user object calling it from a subprogram) is refused on each of
/// `hooks` by attach, run and update, with the helper, the hook and where
/// it works named, and the chain is left as it was; tcx ingress takes it.
pub fn peer_redirects_only_at_tc_ingress(env: &HookEnv, hooks: &[Hook]) {
    let dev = env.dev.as_str();
    let mut progs = vec!["redirect-peer".to_string()];
    match c_object_named("peer_redirect") {
        Some(o) => progs.push(format!("file:{}", o.display())),
        None => crate::common::skip("no C test object peer_redirect (clang): the bundled program only"),
    }
    let refused = |err: &str, hook: Hook| {
        assert!(
            err.contains("calls bpf_redirect_peer, which the kernel honours only at tc ingress")
                && err.contains(&format!("on the {hook} hook every packet it redirects is dropped"))
                && err.contains("attach it on the tcx ingress"),
            "{err}"
        );
    };
    for &hook in hooks {
        let h = hook.name();
        env.attach(hook, "pass", &["--pin", "p"]);
        let before = env.chain(hook);
        for prog in &progs {
            refused(&env.fails(&["attach", dev, h, prog, "--pin", "rp"]), hook);
            refused(&env.fails(&["attach", dev, h, prog, "--plain"]), hook);
            refused(&env.fails(&["run", dev, h, prog]), hook);
            refused(&env.fails(&["update", dev, h, "p", prog]), hook);
            assert_eq!(env.chain(hook), before, "a refused program changes nothing on {h}");
        }
        env.ok(&["detach", dev, h, "p"]);
    }
    for prog in &progs {
        env.ok(&["attach", dev, "ingress", prog, "--pin", "rp"]);
        env.ok(&["detach", dev, "ingress", "rp"]);
    }
    assert!(env.json(&["link", "list"]).as_array().unwrap().is_empty(), "no pins left behind");
}
