//! The measurements behind `cargo xtask bench`, one mode per run, each
//! printing one JSON object (prefixed `NETKIT-BENCH-JSON `) on stdout:
//!
//! - `control`: attach, query, update and detach per operation on 1, 100 and
//!   1000 tcx hooks: through the library (mprog), through the `netkit` binary
//!   (one process per operation) and through the bare bpf() calls (the floor);
//!   and `netkit query` of 1000 devices.
//! - `dataplane DIR`: ns per packet (BPF_PROG_TEST_RUN) of every bundled
//!   program and its C twin from DIR, IPv4 and IPv6, with verified
//!   instruction counts.
//! - `chain`: ns per packet sent through a veth whose egress runs 0, 1, 8 and
//!   63 `next` programs.
//! - `netlink`: netkit pair create and delete, 100 pairs, library against a
//!   single rtnetlink request (run in the VM).
//! - `apply`: 1000 veth devices with a chain of 2 programs on tcx ingress:
//!   `netkit apply` against one `netkit attach` process per attachment, and
//!   against the bare calls from one process with the same parallelism; a
//!   re-apply that changes nothing against `netkit export`.
//! - `apply-pods`: 100 pods (a netkit pair, the peer in the pod's own namespace, a
//!   firewall with one rule and `pass` on the peer hook) by `netkit apply`,
//!   by one `netkit` process per operation, and by the bare requests from one
//!   process with the same parallelism (run in the VM).
//! - `pods`: the data plane between two pods through their node, once on
//!   netkit pairs and once on veth pairs made by the CNI plugin with the same
//!   firewall + counter chains on the pod-facing hooks: TCP stream
//!   throughput and TCP request/response rate with latency percentiles,
//!   from a small client and server in this binary (run in the VM).
//! - `cni`: the CNI plugin as a runtime runs it (one process per command,
//!   host-local for addresses, a firewall with one rule on the peer hook):
//!   ADD and DEL per pod against the same netlink and bpf requests issued
//!   directly, host-local alone, and 50 ADDs run at once (run in the VM).
//! - `scale-host` (natively, veth pairs) and `scale` (in the VM, netkit
//!   pairs): a node of N pods at two sizes, each pod a pair with its peer in
//!   its own namespace and a firewall + counter chain on the peer hook, made
//!   by `netkit apply` (then by the CNI plugin); wall time, CPU time and peak
//!   RSS of every listing beside its ip or bpftool counterpart, stats, one
//!   /metrics scrape, a no-op and a one-pod apply, export, and one CNI ADD
//!   and DEL with N pods present.
//!
//! All of it needs root; `control`, `dataplane`, `chain` and `apply` need
//! tcx (natively), the rest netkit (in the VM).

use std::{
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use netkit::{
    bpf,
    maps::{
        firewall::{Firewall, Rule},
        redirect::Redirect,
    },
    mprog::{self, Anchor, Hook, HookRef},
    netlink::{Netlink, device::PairSpec},
    os::netns,
    programs::{self, BUNDLED, LoadOptions, ProgSpec},
};
use serde_json::{Value, json};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let result = match args.first().map(String::as_str) {
        Some("control") => control(),
        Some("dataplane") => dataplane(&PathBuf::from(args.get(1).expect("dataplane DIR"))),
        Some("chain") => chain(),
        Some("netlink") => netlink(),
        Some("apply") => apply(),
        Some("apply-pods") => apply_pods(),
        Some("pods") => pods(),
        Some("cni") => cni(),
        Some("startup") => startup(false),
        Some("startup-host") => startup(true),
        Some("scale") => scale(false),
        Some("scale-host") => scale(true),
        _ => {
            eprintln!(
                "usage: bench control | dataplane DIR | chain | netlink | apply | apply-pods | pods | cni | startup | startup-host | scale | scale-host"
            );
            std::process::exit(2);
        }
    };
    println!("NETKIT-BENCH-JSON {result}");
}

/// A named namespace for the run, entered by this (main) thread; deleted on drop.
struct BenchNs(String);

impl BenchNs {
    fn new(tag: &str) -> Self {
        let name = format!("nkbench-{tag}-{}", std::process::id());
        netns::create(&name).expect("creating the bench namespace");
        netns::enter(&netns::NetnsRef::Name(name.clone())).expect("entering the bench namespace");
        Self(name)
    }
}

impl Drop for BenchNs {
    fn drop(&mut self) {
        let _ = netns::delete(&self.0);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("ip runs");
    assert!(st.success(), "ip {args:?} failed");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The bare bpf() calls, with attributes laid out here: the floor the
/// library is measured against.
mod floor {
    use super::*;

    fn bpf<T>(cmd: u32, attr: &mut T) -> i64 {
        // SAFETY: attr is a repr(C) bpf_attr member for cmd.
        unsafe { libc::syscall(libc::SYS_bpf, cmd as libc::c_long, attr as *mut T, std::mem::size_of::<T>() as u32) }
    }

    #[repr(C)]
    struct LinkCreate {
        prog_fd: u32,
        ifindex: u32,
        attach_type: u32,
        flags: u32,
        relative: u32,
        pad: u32,
        revision: u64,
    }

    pub fn link_create(prog: BorrowedFd<'_>, ifindex: u32, attach_type: u32) -> OwnedFd {
        let mut a = LinkCreate {
            prog_fd: prog.as_raw_fd() as u32,
            ifindex,
            attach_type,
            flags: 0,
            relative: 0,
            pad: 0,
            revision: 0,
        };
        let fd = bpf(28, &mut a);
        assert!(fd >= 0, "BPF_LINK_CREATE: {}", std::io::Error::last_os_error());
        // SAFETY: a new fd from the kernel.
        unsafe { OwnedFd::from_raw_fd(fd as i32) }
    }

    #[repr(C)]
    struct Query {
        ifindex: u32,
        attach_type: u32,
        query_flags: u32,
        attach_flags: u32,
        prog_ids: u64,
        count: u32,
        pad: u32,
        prog_attach_flags: u64,
        link_ids: u64,
        link_attach_flags: u64,
        revision: u64,
    }

    pub fn query(ifindex: u32, attach_type: u32) -> u32 {
        let mut progs = [0u32; 64];
        let mut links = [0u32; 64];
        let mut a = Query {
            ifindex,
            attach_type,
            query_flags: 0,
            attach_flags: 0,
            prog_ids: progs.as_mut_ptr() as u64,
            count: 64,
            pad: 0,
            prog_attach_flags: 0,
            link_ids: links.as_mut_ptr() as u64,
            link_attach_flags: 0,
            revision: 0,
        };
        assert_eq!(bpf(16, &mut a), 0, "BPF_PROG_QUERY: {}", std::io::Error::last_os_error());
        a.count
    }

    #[repr(C)]
    struct LinkUpdate {
        link_fd: u32,
        new_prog_fd: u32,
        flags: u32,
        old_prog_fd: u32,
    }

    pub fn link_update(link: BorrowedFd<'_>, prog: BorrowedFd<'_>) {
        let mut a = LinkUpdate {
            link_fd: link.as_raw_fd() as u32,
            new_prog_fd: prog.as_raw_fd() as u32,
            flags: 0,
            old_prog_fd: 0,
        };
        assert_eq!(bpf(29, &mut a), 0, "BPF_LINK_UPDATE: {}", std::io::Error::last_os_error());
    }

    #[repr(C)]
    struct ObjPin {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
    }

    pub fn obj_pin(fd: BorrowedFd<'_>, path: &std::path::Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        let mut a = ObjPin { pathname: c.as_ptr() as u64, bpf_fd: fd.as_raw_fd() as u32, file_flags: 0 };
        assert_eq!(bpf(6, &mut a), 0, "BPF_OBJ_PIN {}: {}", path.display(), std::io::Error::last_os_error());
    }

    pub fn link_detach(link: BorrowedFd<'_>) {
        let mut a = [link.as_raw_fd() as u32];
        assert_eq!(bpf(34, &mut a), 0, "BPF_LINK_DETACH: {}", std::io::Error::last_os_error());
    }
}

/// Queries and updates cost microseconds (attach and detach milliseconds):
/// a pass repeats them over the hooks this many times in all.
const CHEAP_OPS: usize = 20_000;

/// Per-operation ns of one attach/query/update/detach pass over `ifindexes`.
#[derive(Default, Clone, Copy)]
struct Pass {
    attach: f64,
    query: f64,
    update: f64,
    detach: f64,
}

fn per_op(start: Instant, n: usize) -> f64 {
    start.elapsed().as_nanos() as f64 / n as f64
}

fn floor_pass(ifindexes: &[u32], p1: &OwnedFd, p2: &OwnedFd) -> Pass {
    let at = bpf::BPF_TCX_INGRESS;
    let t = Instant::now();
    let links: Vec<OwnedFd> = ifindexes.iter().map(|i| floor::link_create(p1.as_fd(), *i, at)).collect();
    let attach = per_op(t, ifindexes.len());
    let rounds = (CHEAP_OPS / ifindexes.len()).max(1);
    let t = Instant::now();
    for _ in 0..rounds {
        for i in ifindexes {
            std::hint::black_box(floor::query(*i, at));
        }
    }
    let query = per_op(t, ifindexes.len() * rounds);
    let t = Instant::now();
    for r in 0..rounds {
        let prog = if r % 2 == 0 { p2 } else { p1 };
        for l in &links {
            floor::link_update(l.as_fd(), prog.as_fd());
        }
    }
    let update = per_op(t, ifindexes.len() * rounds);
    let t = Instant::now();
    for l in &links {
        floor::link_detach(l.as_fd());
    }
    let detach = per_op(t, ifindexes.len());
    drop(links);
    Pass { attach, query, update, detach }
}

fn library_pass(ifindexes: &[u32], p1: &OwnedFd, p2: &OwnedFd) -> Pass {
    let t = Instant::now();
    let links: Vec<OwnedFd> = ifindexes
        .iter()
        .map(|i| HookRef::new(*i, Hook::Ingress).attach_link(p1.as_fd(), &Anchor::Last, None).expect("attach"))
        .collect();
    let attach = per_op(t, ifindexes.len());
    let rounds = (CHEAP_OPS / ifindexes.len()).max(1);
    let t = Instant::now();
    for _ in 0..rounds {
        for i in ifindexes {
            std::hint::black_box(HookRef::new(*i, Hook::Ingress).query().expect("query"));
        }
    }
    let query = per_op(t, ifindexes.len() * rounds);
    let t = Instant::now();
    for r in 0..rounds {
        let prog = if r % 2 == 0 { p2 } else { p1 };
        for l in &links {
            mprog::update_link(l.as_fd(), prog.as_fd(), None).expect("update");
        }
    }
    let update = per_op(t, ifindexes.len() * rounds);
    let t = Instant::now();
    for l in &links {
        mprog::detach_link(l.as_fd()).expect("detach");
    }
    let detach = per_op(t, ifindexes.len());
    drop(links);
    Pass { attach, query, update, detach }
}

fn binary_pass(ns: &str, bpffs: &str, names: &[String], p1: u32, p2: u32) -> Pass {
    let bin = env!("CARGO_BIN_EXE_netkit");
    let run = |args: &[&str]| {
        let out = Command::new(bin).args(["-n", ns, "--bpffs", bpffs]).args(args).output().unwrap();
        assert!(out.status.success(), "netkit {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let (id1, id2) = (format!("id:{p1}"), format!("id:{p2}"));
    let t = Instant::now();
    for n in names {
        run(&["attach", n, "ingress", &id1, "--pin", "b"]);
    }
    let attach = per_op(t, names.len());
    let t = Instant::now();
    for n in names {
        run(&["query", n, "ingress"]);
    }
    let query = per_op(t, names.len());
    let t = Instant::now();
    for n in names {
        run(&["update", n, "ingress", "b", &id2]);
    }
    let update = per_op(t, names.len());
    let t = Instant::now();
    for n in names {
        run(&["detach", n, "ingress", "b"]);
    }
    let detach = per_op(t, names.len());
    Pass { attach, query, update, detach }
}

fn pass_json(p: Pass) -> Value {
    json!({ "attach": p.attach, "query": p.query, "update": p.update, "detach": p.detach })
}

fn control() -> Value {
    let ns = BenchNs::new("cp");
    let rt = runtime();
    // 1000 devices: 500 veth pairs.
    let names: Vec<String> = rt.block_on(async {
        let nl = Netlink::connect().unwrap();
        for i in 0..500 {
            let msg = rtnetlink::LinkVeth::new(&format!("va{i}"), &format!("vb{i}")).build();
            nl_handle(&nl).link().add(msg).execute().await.expect("creating a veth pair");
        }
        (0..500).flat_map(|i| [format!("va{i}"), format!("vb{i}")]).collect()
    });
    let ifindexes = ifindexes_of(&rt, &names);
    let p1 = bpf::prog_load_sched_cls("bench_next", &bpf::insns_return(-1)).unwrap();
    let p2 = bpf::prog_load_sched_cls("bench_pass", &bpf::insns_return(0)).unwrap();
    let id = |fd: &OwnedFd| bpf::prog_info(fd.as_fd()).unwrap().0.id;
    let bpffs = std::env::temp_dir().join(format!("nkbench-bpffs-{}", std::process::id()));
    std::fs::create_dir_all(&bpffs).unwrap();
    assert!(Command::new("mount").args(["-t", "bpf", "bpf"]).arg(&bpffs).status().unwrap().success());
    let bpffs_s = bpffs.display().to_string();

    let mut sizes = Vec::new();
    for size in [1usize, 100, 1000] {
        // Every attach and detach waits for an RCU grace period in the
        // kernel (the hook's entry is swapped), so they cost milliseconds:
        // ~200 per path and size is enough (queries and updates repeat
        // within a pass). Floor and library alternate so drift on a shared
        // machine hits both alike.
        let passes = (200 / size).clamp(3, 200);
        eprintln!("control: {size} hooks, {passes} passes per path");
        let (mut f, mut l) = (Vec::new(), Vec::new());
        for _ in 0..passes {
            f.push(floor_pass(&ifindexes[..size], &p1, &p2));
            l.push(library_pass(&ifindexes[..size], &p1, &p2));
        }
        let med = |v: &[Pass], pick: fn(&Pass) -> f64| median(v.iter().map(pick).collect());
        let summarize = |v: &[Pass]| Pass {
            attach: med(v, |p| p.attach),
            query: med(v, |p| p.query),
            update: med(v, |p| p.update),
            detach: med(v, |p| p.detach),
        };
        let (floor, library) = (summarize(&f), summarize(&l));
        let runs: Vec<Pass> = (0..(30 / size).clamp(1, 10))
            .map(|_| binary_pass(&ns.0, &bpffs_s, &names[..size], id(&p1), id(&p2)))
            .collect();
        let binary = summarize(&runs);
        sizes.push(json!({
            "hooks": size,
            "passes": passes,
            "floor_ns": pass_json(floor),
            "library_ns": pass_json(library),
            "binary_ns": pass_json(binary),
        }));
    }

    // `netkit query` of 1000 devices, one program each, one process.
    let links: Vec<OwnedFd> =
        ifindexes.iter().map(|i| floor::link_create(p1.as_fd(), *i, bpf::BPF_TCX_INGRESS)).collect();
    let mut runs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_netkit")).args(["-n", &ns.0, "-j", "query"]).output().unwrap();
        runs.push(t.elapsed().as_secs_f64() * 1e3);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 1000, "query lists every hook");
    }
    drop(links);
    let _ = Command::new("umount").arg(&bpffs).status();
    let _ = std::fs::remove_dir(&bpffs);
    json!({ "suite": "control", "sizes": sizes, "query_1000_devices_ms": median(runs) })
}

/// The ifindexes of `names` in the current namespace.
fn ifindexes_of(rt: &tokio::runtime::Runtime, names: &[String]) -> Vec<u32> {
    rt.block_on(async {
        let nl = Netlink::connect().unwrap();
        let mut out = Vec::new();
        for n in names {
            out.push(nl.link_by_name(n).unwrap().unwrap().index);
        }
        out
    })
}

fn nl_handle(nl: &Netlink) -> rtnetlink::Handle {
    nl.handle()
}

/// Ethernet + IPv4 + UDP (dst port 53), 64 bytes of payload.
fn packet_v4() -> Vec<u8> {
    let mut p = vec![0u8; 14 + 20 + 8 + 64];
    p[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    p[14] = 0x45;
    p[16..18].copy_from_slice(&((20 + 8 + 64) as u16).to_be_bytes());
    p[22] = 64;
    p[23] = 17;
    p[26..30].copy_from_slice(&[192, 168, 7, 7]);
    p[30..34].copy_from_slice(&[10, 1, 2, 3]);
    p[34..36].copy_from_slice(&40000u16.to_be_bytes());
    p[36..38].copy_from_slice(&53u16.to_be_bytes());
    p[38..40].copy_from_slice(&((8 + 64) as u16).to_be_bytes());
    p
}

/// Ethernet + IPv6 + UDP (dst port 53), 64 bytes of payload.
fn packet_v6() -> Vec<u8> {
    let mut p = vec![0u8; 14 + 40 + 8 + 64];
    p[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    p[14] = 0x60;
    p[18..20].copy_from_slice(&((8 + 64) as u16).to_be_bytes());
    p[20] = 17;
    p[21] = 64;
    p[22..38].copy_from_slice(&"fd07::7".parse::<std::net::Ipv6Addr>().unwrap().octets());
    p[38..54].copy_from_slice(&"fd00::1:2:3".parse::<std::net::Ipv6Addr>().unwrap().octets());
    p[54..56].copy_from_slice(&40000u16.to_be_bytes());
    p[56..58].copy_from_slice(&53u16.to_be_bytes());
    p[58..60].copy_from_slice(&((8 + 64) as u16).to_be_bytes());
    p
}

/// The same state in a bundled program and its C twin: firewall rules the
/// test packets walk through (a /32 that does not match, then a /16 that
/// does), a redirect entry for their destination.
fn prepare_maps(name: &str, prog_id: u32) {
    let rule = |s: &str| Rule::parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>()).unwrap();
    match name {
        "firewall" => {
            let fw = Firewall::open(prog_id).unwrap();
            for r in [
                "dst 10.1.2.3/32 proto tcp port 22 deny",
                "dst 10.1.0.0/16 proto udp port 53 allow",
                "src 192.168.0.0/16 deny",
                "dst fd00::1:2:3/128 proto tcp deny",
                "dst fd00::/16 proto udp port 53 allow",
            ] {
                fw.add(&rule(r)).unwrap();
            }
        }
        "redirect-peer" => {
            let r = Redirect::open(prog_id).unwrap();
            r.add("10.1.2.3".parse().unwrap(), 1).unwrap();
            r.add("fd00::1:2:3".parse().unwrap(), 1).unwrap();
        }
        _ => {}
    }
}

const REPEAT: u32 = 1_000_000;

/// Wall-clock ns per run of `repeat` BPF_PROG_TEST_RUN iterations (finer than
/// the kernel's integer `duration`).
fn ns_per_packet(prog: BorrowedFd<'_>, packet: &[u8]) -> f64 {
    let t = Instant::now();
    bpf::prog_test_run(prog, packet, REPEAT).expect("BPF_PROG_TEST_RUN");
    t.elapsed().as_nanos() as f64 / f64::from(REPEAT)
}

fn dataplane(c_dir: &std::path::Path) -> Value {
    let mut rows = Vec::new();
    for b in BUNDLED {
        let rust = programs::load(&ProgSpec::Bundled(b.name.into()), &LoadOptions::default())
            .expect("loading the bundled program");
        let c_path = c_dir.join(format!("{}.o", b.function));
        let c = programs::load(
            &ProgSpec::File { path: c_path, function: Some(b.function.into()) },
            &LoadOptions::default(),
        )
        .expect("loading the C twin");
        prepare_maps(b.name, rust.id());
        prepare_maps(b.name, c.id());
        for (family, packet) in [("ipv4", packet_v4()), ("ipv6", packet_v6())] {
            let rv = bpf::prog_test_run(rust.fd.as_fd(), &packet, 1).unwrap().retval;
            let cv = bpf::prog_test_run(c.fd.as_fd(), &packet, 1).unwrap().retval;
            assert_eq!(rv, cv, "{} and its C twin disagree on a {family} packet", b.name);
            let (mut r, mut cc) = (Vec::new(), Vec::new());
            for _ in 0..7 {
                r.push(ns_per_packet(rust.fd.as_fd(), &packet));
                cc.push(ns_per_packet(c.fd.as_fd(), &packet));
            }
            let (r, cc) = (median(r), median(cc));
            rows.push(json!({
                "program": b.name,
                "family": family,
                "verdict": rv as i32,
                "bundled_ns": r,
                "c_ns": cc,
                "ratio": r / cc,
                "bundled_insns": rust.info.verified_insns,
                "c_insns": c.info.verified_insns,
            }));
        }
    }
    json!({ "suite": "dataplane", "repeat": REPEAT, "rows": rows })
}

fn chain() -> Value {
    let _ns = BenchNs::new("ch");
    ip(&["link", "add", "ca", "type", "veth", "peer", "name", "cb"]);
    ip(&["addr", "add", "10.200.0.1/24", "dev", "ca"]);
    ip(&["addr", "add", "10.200.0.2/24", "dev", "cb"]);
    ip(&["link", "set", "ca", "up"]);
    ip(&["link", "set", "cb", "up"]);
    let rt = runtime();
    let (ca, cb_mac) = rt.block_on(async {
        let nl = Netlink::connect().unwrap();
        let ca = nl.link_by_name("ca").unwrap().unwrap();
        let cb = nl.link_by_name("cb").unwrap().unwrap();
        (ca.index, cb.mac().unwrap())
    });
    // Raw Ethernet frames with an unused ethertype, sent from an AF_PACKET
    // socket bound to ca: they cross ca's tcx egress like any packet, and cb
    // drops them at once (no protocol handler), so the chain is a visible
    // share of the per-packet cost. sendmmsg in batches of 64 keeps the
    // syscall cost small.
    const ETHERTYPE: u16 = 0x88b5;
    // SAFETY: plain socket calls on a new fd; sockaddr_ll is zeroed then filled.
    let fd = unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(ETHERTYPE.to_be()));
        assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETHERTYPE.to_be();
        sll.sll_ifindex = ca as i32;
        let r =
            libc::bind(fd, &sll as *const _ as *const libc::sockaddr, std::mem::size_of::<libc::sockaddr_ll>() as u32);
        assert_eq!(r, 0, "binding the AF_PACKET socket: {}", std::io::Error::last_os_error());
        OwnedFd::from_raw_fd(fd)
    };
    let mut payload = [0u8; 64];
    for (i, b) in cb_mac.split(':').enumerate() {
        payload[i] = u8::from_str_radix(b, 16).unwrap();
    }
    payload[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    payload[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
    const PACKETS: usize = 1 << 20;
    const BATCH: usize = 64;
    let mut iov = libc::iovec { iov_base: payload.as_ptr() as *mut libc::c_void, iov_len: payload.len() };
    // SAFETY: plain C structs; each message points at the one iovec above.
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH)
        .map(|_| unsafe {
            let mut m: libc::mmsghdr = std::mem::zeroed();
            m.msg_hdr.msg_iov = &mut iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let fd = fd.as_raw_fd();
    let mut send = || {
        let t = Instant::now();
        for _ in 0..PACKETS / BATCH {
            // SAFETY: msgs outlives the call; the socket is bound to ca.
            let sent = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), BATCH as u32, 0) };
            assert_eq!(sent, BATCH as i32, "sendmmsg: {}", std::io::Error::last_os_error());
        }
        t.elapsed().as_nanos() as f64 / PACKETS as f64
    };
    let href = HookRef::new(ca, Hook::Egress);
    let nexts: Vec<programs::Loaded> =
        (0..63).map(|_| programs::load(&ProgSpec::Bundled("next".into()), &LoadOptions::default()).unwrap()).collect();
    let counts = [0usize, 1, 8, 63];
    let mut samples = vec![Vec::new(); counts.len()];
    // Rounds interleave the chain lengths; the minimum of each is the least
    // disturbed by other load on the machine.
    for _ in 0..5 {
        for (i, k) in counts.iter().enumerate() {
            let links: Vec<OwnedFd> =
                nexts[..*k].iter().map(|p| href.attach_link(p.fd.as_fd(), &Anchor::Last, None).unwrap()).collect();
            send(); // warm up
            samples[i].push(send());
            drop(links);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let best: Vec<f64> = samples.iter().map(|s| s.iter().copied().fold(f64::MAX, f64::min)).collect();
    let rows: Vec<Value> = counts
        .iter()
        .zip(&best)
        .map(|(k, ns)| {
            json!({
                "programs": k,
                "ns_per_packet": ns,
                "added_ns_per_program": if *k == 0 { 0.0 } else { (ns - best[0]) / *k as f64 },
            })
        })
        .collect();
    json!({ "suite": "chain", "packets": PACKETS, "rows": rows })
}

fn netlink() -> Value {
    let _ns = BenchNs::new("nl");
    let rt = runtime();
    const PAIRS: usize = 100;
    rt.block_on(async {
        let nl = Netlink::connect().unwrap();
        let handle = nl.handle();
        let (mut fc, mut fd, mut lc, mut ld) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 0..3 {
            let t = Instant::now();
            for i in 0..PAIRS {
                let msg = rtnetlink::LinkNetkit::new(
                    &format!("f{round}x{i}"),
                    &format!("f{round}y{i}"),
                    netlink_packet_route::link::NetkitMode::L3,
                )
                .build();
                handle.link().add(msg).execute().await.unwrap();
            }
            fc.push(per_op(t, PAIRS) / 1e3);
            let t = Instant::now();
            for i in 0..PAIRS {
                let msg = rtnetlink::LinkUnspec::new_with_name(&format!("f{round}x{i}")).build();
                handle.link().del_with_message(msg).execute().await.unwrap();
            }
            fd.push(per_op(t, PAIRS) / 1e3);

            let t = Instant::now();
            for i in 0..PAIRS {
                let spec = PairSpec {
                    name: format!("l{round}x{i}"),
                    peer: Some(format!("l{round}y{i}")),
                    ..Default::default()
                };
                nl.add_pair(&spec).await.unwrap();
            }
            lc.push(per_op(t, PAIRS) / 1e3);
            let t = Instant::now();
            for i in 0..PAIRS {
                nl.delete_pair(&format!("l{round}x{i}")).await.unwrap();
            }
            ld.push(per_op(t, PAIRS) / 1e3);
        }
        let (fc, fd, lc, ld) = (median(fc), median(fd), median(lc), median(ld));
        json!({
            "suite": "netlink",
            "pairs": PAIRS,
            "floor_us": { "create": fc, "delete": fd },
            "library_us": { "create": lc, "delete": ld },
            "ratio": { "create": lc / fc, "delete": ld / fd },
        })
    })
}

/// The devices of the apply benchmark: `n` veth ends (n/2 pairs), made with
/// one `ip -batch`, in the bench namespace.
fn apply_devices(ns: &str, n: usize) -> Vec<String> {
    let mut batch = String::new();
    for i in 0..n / 2 {
        batch += &format!("link add xa{i} type veth peer name xb{i}\n");
    }
    let mut child = Command::new("ip")
        .args(["-n", ns, "-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("ip runs");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), batch.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "creating the veth devices");
    (0..n / 2).flat_map(|i| [format!("xa{i}"), format!("xb{i}")]).collect()
}

/// Every device gone (their links with them), every pin and the record removed.
fn apply_reset(ns: &str, n: usize, bpffs: &std::path::Path, state: &std::path::Path) -> Vec<String> {
    let mut batch = String::new();
    for i in 0..n / 2 {
        batch += &format!("link del xa{i}\n");
    }
    let mut child = Command::new("ip")
        .args(["-n", ns, "-force", "-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ip runs");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), batch.as_bytes()).unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(bpffs.join("netkit"));
    let _ = std::fs::remove_file(state);
    apply_devices(ns, n)
}

fn attachments(ns: &str) -> usize {
    let out = Command::new(env!("CARGO_BIN_EXE_netkit")).args(["-n", ns, "-j", "query"]).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().unwrap().iter().map(|h| h["programs"].as_array().unwrap().len()).sum()
}

fn apply() -> Value {
    const DEVICES: usize = 1000;
    const JOBS: usize = 8;
    let ns = BenchNs::new("ap");
    let bpffs = std::env::temp_dir().join(format!("nkbench-apply-{}", std::process::id()));
    std::fs::create_dir_all(&bpffs).unwrap();
    assert!(Command::new("mount").args(["-t", "bpf", "bpf"]).arg(&bpffs).status().unwrap().success());
    let state = bpffs.with_extension("state.json");
    let bpffs_s = bpffs.display().to_string();
    let state_s = state.display().to_string();
    let names = apply_devices(&ns.0, DEVICES);
    let mut spec = String::from("chains:\n");
    for n in &names {
        spec += &format!(
            "  - device: {n}\n    hook: ingress\n    programs:\n      - {{name: a, program: pass}}\n      - {{name: b, program: counter}}\n"
        );
    }
    let spec_path = bpffs.with_extension("spec.yaml");
    std::fs::write(&spec_path, &spec).unwrap();
    let netkit = |args: &[&str]| -> f64 {
        let t = Instant::now();
        let out = Command::new(netkit_bin()).args(["-n", &ns.0, "--bpffs", &bpffs_s]).args(args).output().unwrap();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        assert!(out.status.success(), "netkit {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        ms
    };
    let spec_s = spec_path.display().to_string();
    let apply_args = ["apply", "-f", &spec_s, "--state", &state_s, "--jobs", "8"];

    // apply from nothing, and the re-apply and export of its result.
    let (mut apply_ms, mut reapply_ms, mut export_ms) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..3 {
        eprintln!("apply: round {round}");
        apply_reset(&ns.0, DEVICES, &bpffs, &state);
        apply_ms.push(netkit(&apply_args));
        assert_eq!(attachments(&ns.0), 2 * DEVICES, "apply attached every program");
        reapply_ms.push(netkit(&apply_args));
        export_ms.push(netkit(&["export", "--state", &state_s]));
    }

    // The script a user writes today: one process per attachment.
    eprintln!("apply: one netkit attach per program");
    apply_reset(&ns.0, DEVICES, &bpffs, &state);
    let t = Instant::now();
    for n in &names {
        netkit(&["attach", n, "ingress", "pass", "--pin", "a"]);
        netkit(&["attach", n, "ingress", "counter", "--pin", "b"]);
    }
    let script_ms = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(attachments(&ns.0), 2 * DEVICES);

    // The floor: the same programs loaded once, links created and pinned
    // from one process on JOBS threads.
    // Rounds 0-2 on JOBS threads; round 3 on one thread, to show whether
    // the kernel lets changes of different hooks overlap at all.
    let (mut floor_ms, mut floor_serial_ms) = (Vec::new(), 0.0);
    for round in 0..4 {
        let threads = if round < 3 { JOBS } else { 1 };
        eprintln!("apply: floor round {round} ({threads} threads)");
        let names = apply_reset(&ns.0, DEVICES, &bpffs, &state);
        let ifindexes = ifindexes_of(&runtime(), &names);
        let t = Instant::now();
        let load = |name: &str| programs::load(&ProgSpec::Bundled(name.into()), &LoadOptions::default()).unwrap();
        let (pass, counter) = (load("pass"), load("counter"));
        let root = bpffs.join("netkit/links").join(&ns.0);
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let Some(ifindex) = ifindexes.get(i) else { break };
                        let dir = root.join(&names[i]).join("ingress");
                        std::fs::create_dir_all(&dir).unwrap();
                        for (prog, pin) in [(&pass, "a"), (&counter, "b")] {
                            let link = floor::link_create(prog.fd.as_fd(), *ifindex, bpf::BPF_TCX_INGRESS);
                            floor::obj_pin(link.as_fd(), &dir.join(pin));
                        }
                    }
                });
            }
        });
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if threads == 1 {
            floor_serial_ms = ms;
        } else {
            floor_ms.push(ms);
        }
        assert_eq!(attachments(&ns.0), 2 * DEVICES);
    }
    // The namespace goes with `ns`, and the devices and links with it.
    let _ = std::fs::remove_file(&state);
    let _ = Command::new("umount").arg(&bpffs).status();
    let _ = std::fs::remove_dir(&bpffs);
    let _ = std::fs::remove_file(&spec_path);
    let (apply_ms, reapply_ms, export_ms, floor_ms) =
        (median(apply_ms), median(reapply_ms), median(export_ms), median(floor_ms));
    json!({
        "suite": "apply",
        "devices": DEVICES,
        "attachments": 2 * DEVICES,
        "jobs": JOBS,
        "apply_ms": apply_ms,
        "script_ms": script_ms,
        "floor_ms": floor_ms,
        "floor_one_thread_ms": floor_serial_ms,
        "script_over_floor": script_ms / floor_ms,
        "reapply_ms": reapply_ms,
        "export_ms": export_ms,
        "script_over_apply": script_ms / apply_ms,
        "apply_over_floor": apply_ms / floor_ms,
        "reapply_over_export": reapply_ms / export_ms,
    })
}

/// The `netkit` binary the apply suites drive: the optimized one next to
/// this bench, or in the VM the one shipped as `$NETKIT_BENCH_BIN`.
fn netkit_bin() -> String {
    std::env::var("NETKIT_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_netkit").to_string())
}

fn apply_pods() -> Value {
    const PODS: usize = 100;
    const JOBS: usize = 8;
    const NETKIT_PEER: u32 = 55;
    let node = BenchNs::new("apods");
    let pod_names: Vec<String> = (0..PODS).map(|i| format!("{}-p{i}", node.0)).collect();
    let bpffs = std::env::temp_dir().join(format!("nkbench-apods-{}", std::process::id()));
    std::fs::create_dir_all(&bpffs).unwrap();
    assert!(Command::new("mount").args(["-t", "bpf", "bpf"]).arg(&bpffs).status().unwrap().success());
    let state = bpffs.with_extension("state.json");
    let (bpffs_s, state_s) = (bpffs.display().to_string(), state.display().to_string());
    let bin = netkit_bin();
    let netkit = |args: &[&str]| {
        let out = Command::new(&bin).args(["-n", &node.0, "--bpffs", &bpffs_s]).args(args).output().unwrap();
        assert!(out.status.success(), "netkit {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    // Every pod namespace fresh (its end of the pair goes with it), the node
    // side gone with its peer, pins and record removed.
    let reset = || {
        for p in &pod_names {
            let _ = netns::delete(p);
            netns::create(p).unwrap();
        }
        let _ = std::fs::remove_dir_all(bpffs.join("netkit"));
        let _ = std::fs::remove_file(&state);
        // A pair goes when either end goes; wait until the node side is empty.
        let deadline = Instant::now() + Duration::from_secs(60);
        let rt = runtime();
        let left = || {
            rt.block_on(async {
                let nl = Netlink::connect().unwrap();
                let mut n = 0;
                for i in 0..PODS {
                    n += usize::from(nl.link_by_name(&format!("nk{i}")).unwrap().is_some());
                }
                n
            })
        };
        while left() > 0 {
            assert!(Instant::now() < deadline, "pairs left after the pods went");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let mut spec = String::from("pairs:\n");
    for (i, p) in pod_names.iter().enumerate() {
        spec += &format!("  - {{name: nk{i}, up: false, peer: {{name: eth0, netns: {p}}}}}\n");
    }
    spec += "chains:\n";
    for i in 0..PODS {
        spec += &format!(
            "  - device: nk{i}\n    hook: peer\n    programs:\n      - {{name: fw, program: firewall, rules: ['src 10.0.0.9 deny']}}\n      - {{name: p, program: pass}}\n"
        );
    }
    let spec_path = bpffs.with_extension("spec.yaml");
    std::fs::write(&spec_path, &spec).unwrap();
    let spec_s = spec_path.display().to_string();

    eprintln!("pods: apply");
    reset();
    let t = Instant::now();
    netkit(&["apply", "-f", &spec_s, "--state", &state_s, "--jobs", "8"]);
    let apply_ms = t.elapsed().as_secs_f64() * 1e3;

    eprintln!("pods: one netkit process per operation");
    reset();
    let t = Instant::now();
    for (i, p) in pod_names.iter().enumerate() {
        let dev = format!("nk{i}");
        netkit(&["device", "add", &dev, "--peer", "eth0", "--peer-netns", p]);
        netkit(&["attach", &dev, "peer", "firewall", "--pin", "fw"]);
        netkit(&["firewall", "add", &dev, "peer", "src", "10.0.0.9", "deny"]);
        netkit(&["attach", &dev, "peer", "pass", "--pin", "p"]);
    }
    let script_ms = t.elapsed().as_secs_f64() * 1e3;

    eprintln!("pods: floor");
    reset();
    let rt = runtime();
    let t = Instant::now();
    let ifindexes: Vec<u32> = rt.block_on(async {
        use futures::StreamExt as _;
        use netlink_packet_route::link::{InfoData, InfoKind, InfoNetkit, NetkitMode};
        use rtnetlink::{LinkMessageBuilder, LinkNetkit, LinkUnspec};
        let nl = Netlink::connect().unwrap();
        let handle = nl.handle();
        let fds: Vec<OwnedFd> = pod_names.iter().map(|p| netns::NetnsRef::Name(p.clone()).open().unwrap()).collect();
        futures::stream::iter(0..PODS)
            .map(|i| {
                let handle = handle.clone();
                let fd = fds[i].as_raw_fd();
                async move {
                    let peer = LinkMessageBuilder::<LinkUnspec>::new().name("eth0".to_string()).setns_by_fd(fd).build();
                    let msg = LinkMessageBuilder::<LinkNetkit>::new_with_info_kind(InfoKind::Netkit)
                        .name(format!("nk{i}"))
                        .set_info_data(InfoData::Netkit(vec![InfoNetkit::Mode(NetkitMode::L3), InfoNetkit::Peer(peer)]))
                        .build();
                    handle.link().add(msg).execute().await.unwrap();
                }
            })
            .buffer_unordered(JOBS)
            .collect::<Vec<()>>()
            .await;
        let mut out = Vec::new();
        for i in 0..PODS {
            out.push(nl.link_by_name(&format!("nk{i}")).unwrap().unwrap().index);
        }
        out
    });
    let pass = programs::load(&ProgSpec::Bundled("pass".into()), &LoadOptions::default()).unwrap();
    let rule = Rule::parse(&["src".into(), "10.0.0.9".into(), "deny".into()]).unwrap();
    let root = bpffs.join("netkit/links").join(&node.0);
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..JOBS {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(ifindex) = ifindexes.get(i) else { break };
                    let fw = programs::load(&ProgSpec::Bundled("firewall".into()), &LoadOptions::default()).unwrap();
                    Firewall::open(fw.id()).unwrap().add(&rule).unwrap();
                    let dir = root.join(format!("nk{i}")).join("peer");
                    std::fs::create_dir_all(&dir).unwrap();
                    for (prog, pin) in [(&fw, "fw"), (&pass, "p")] {
                        let link = floor::link_create(prog.fd.as_fd(), *ifindex, NETKIT_PEER);
                        floor::obj_pin(link.as_fd(), &dir.join(pin));
                    }
                }
            });
        }
    });
    let floor_ms = t.elapsed().as_secs_f64() * 1e3;
    reset();
    for p in &pod_names {
        let _ = netns::delete(p);
    }
    let _ = Command::new("umount").arg(&bpffs).status();
    let _ = std::fs::remove_dir(&bpffs);
    let _ = std::fs::remove_file(&spec_path);
    json!({
        "suite": "apply-pods",
        "pods": PODS,
        "jobs": JOBS,
        "apply_ms": apply_ms,
        "script_ms": script_ms,
        "floor_ms": floor_ms,
        "script_over_apply": script_ms / apply_ms,
        "apply_over_floor": apply_ms / floor_ms,
    })
}

/// The data plane between two pods through their node, on netkit pairs and
/// on veth pairs side by side: the CNI plugin makes both kinds with the same
/// chains (firewall + counter on the peer and the primary hook), then rounds
/// alternate between the kinds so that drift of the machine hits both alike.
fn pods() -> Value {
    const ROUNDS: usize = 3;
    const SECS: f64 = 2.0;
    let node = BenchNs::new("pods");
    // A node has an address, as every real one does: in a namespace without
    // any IPv4 address the kernel has no local table yet and takes every
    // neighbour for a broadcast one, so it would forward to veth pods with
    // ff:ff:ff:ff:ff:ff, which their TCP drops (netkit's L3 mode has no
    // neighbours and would not notice).
    ip(&["addr", "add", "10.99.0.1/32", "dev", "lo"]);
    let (plugins, plugin) = cni_plugins();
    let dir = std::env::temp_dir().join(format!("nkbench-pods-{}", std::process::id()));
    let bpffs = dir.join("bpffs");
    std::fs::create_dir_all(&bpffs).unwrap();
    assert!(Command::new("mount").args(["-t", "bpf", "bpf"]).arg(&bpffs).status().unwrap().success());
    let bpffs_s = bpffs.display().to_string();
    let chain = json!([
        {"name": "fw", "program": "firewall", "rules": ["src 10.0.0.9 deny"]},
        {"name": "count", "program": "counter"},
    ]);
    let kinds = ["netkit", "veth"];
    let confs: Vec<String> = kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            json!({
                "cniVersion": "1.1.0", "name": format!("bench-{kind}"), "type": "netkit-cni",
                "kind": kind, "mtu": 1500, "bpffs": bpffs, "stateDir": dir.join(format!("state-{kind}")),
                "chains": [{"hook": "peer", "programs": chain}, {"hook": "primary", "programs": chain}],
                "ipam": {"type": "host-local", "ranges": [[{"subnet": format!("10.{}.0.0/24", 50 + i)}]],
                         "dataDir": dir.join(format!("ipam-{kind}"))},
            })
            .to_string()
        })
        .collect();
    // Two pods of each kind: (namespace, container id, address, host end).
    let mut pods: Vec<Vec<(String, String, String, String)>> = Vec::new();
    for (kind, conf) in kinds.iter().zip(&confs) {
        let mut two = Vec::new();
        for side in ["a", "b"] {
            let (ns, id) = (format!("{}-{kind}-{side}", node.0), format!("{kind}-{side}"));
            netns::create(&ns).unwrap();
            let (_, out) = cni_exec(&plugin, &plugins, conf, "ADD", &id, &ns);
            let result: Value = serde_json::from_str(&out).unwrap();
            let ip = result["ips"][0]["address"].as_str().unwrap().split('/').next().unwrap().to_string();
            let host = result["interfaces"][0]["name"].as_str().unwrap().to_string();
            two.push((ns, id, ip, host));
        }
        pods.push(two);
    }
    let (mut stream, mut rr) = (vec![Vec::new(); kinds.len()], vec![traffic::Rr::default(); kinds.len()]);
    for (k, kind) in kinds.iter().enumerate() {
        // Neighbours resolved and connections warm before anything counts.
        let (a, b) = (&pods[k][0], &pods[k][1]);
        eprintln!("pods: {kind}: {} -> {} warming up", a.2, b.2);
        traffic::rr(&a.0, &b.0, &b.2, 0.2);
    }
    for round in 0..ROUNDS {
        for (k, kind) in kinds.iter().enumerate() {
            let (a, b) = (&pods[k][0], &pods[k][1]);
            eprintln!("pods: round {}, {kind}: stream and request/response", round + 1);
            stream[k].push(traffic::stream(&a.0, &b.0, &b.2, SECS));
            rr[k].add(traffic::rr(&a.0, &b.0, &b.2, SECS));
        }
    }
    // The chains ran on every packet: pod a's peer hook counted at least one
    // packet per transaction, and the firewall's rule matched none.
    let netkit = |args: &[&str]| -> Value {
        let out = Command::new(netkit_bin()).args(["-j", "--bpffs", &bpffs_s]).args(args).output().unwrap();
        assert!(out.status.success(), "netkit {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let mut counted = Vec::new();
    for (k, kind) in kinds.iter().enumerate() {
        let stats = netkit(&["stats", &pods[k][0].3, "peer"]);
        let progs = stats[0]["programs"].as_array().unwrap();
        let packets = progs.iter().find_map(|p| p["packets"].as_u64()).expect("the counter's packets");
        let hits: u64 = progs
            .iter()
            .filter_map(|p| p["rules"].as_array())
            .flatten()
            .filter(|r| r["id"] != 0)
            .map(|r| r["hits"].as_u64().unwrap())
            .sum();
        assert!(
            packets >= rr[k].transactions,
            "{kind}: the counter on pod a's peer hook saw {packets} packets for {} transactions",
            rr[k].transactions
        );
        assert_eq!(hits, 0, "{kind}: the firewall's rule matched pod traffic");
        counted.push(packets);
    }
    for (k, conf) in confs.iter().enumerate() {
        for (ns, id, _, _) in &pods[k] {
            cni_exec(&plugin, &plugins, conf, "DEL", id, ns);
        }
    }
    assert_eq!(node_devices(), ["lo"], "DEL left devices on the node");
    let left = leftover_files(&bpffs, &kinds.map(|k| dir.join(format!("ipam-{k}"))));
    assert_eq!(left, (0, 0), "the pods left (pins, address allocations) {left:?}");
    for two in &pods {
        for (ns, _, _, _) in two {
            netns::delete(ns).unwrap();
        }
    }
    let _ = Command::new("umount").arg(&bpffs).status();
    let _ = std::fs::remove_dir_all(&dir);
    let per_kind = |k: usize| {
        let r = &rr[k];
        json!({
            "stream_mbit_s": median(stream[k].clone()),
            "stream_rounds_mbit_s": stream[k],
            "rr_per_s": r.transactions as f64 / r.secs,
            "rr_transactions": r.transactions,
            "latency_us": { "p50": r.percentile(0.50), "p90": r.percentile(0.90), "p99": r.percentile(0.99) },
            "peer_counter_packets": counted[k],
        })
    };
    let (nk, veth) = (per_kind(0), per_kind(1));
    let ratio = |key: &str| f(&nk[key]) / f(&veth[key]);
    let lat_ratio = |p: &str| f(&nk["latency_us"][p]) / f(&veth["latency_us"][p]);
    json!({
        "suite": "pods",
        "rounds": ROUNDS,
        "secs": SECS,
        "netkit": nk,
        "veth": veth,
        "netkit_over_veth": {
            "stream": ratio("stream_mbit_s"),
            "rr": ratio("rr_per_s"),
            "p50": lat_ratio("p50"),
            "p90": lat_ratio("p90"),
            "p99": lat_ratio("p99"),
        },
    })
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Files left under bpffs/netkit (pins) and in the IPAM data directories
/// (allocations; host-local's lock and last-reserved files are its own).
fn leftover_files(bpffs: &std::path::Path, ipam: &[PathBuf]) -> (usize, usize) {
    let files = |root: &std::path::Path| -> usize {
        let o = Command::new("find").arg(root).args(["-type", "f"]).output().unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.ends_with("/lock") && !l.contains("last_reserved_ip"))
            .count()
    };
    (files(&bpffs.join("netkit")), ipam.iter().map(|d| files(d)).sum())
}

/// A TCP client and server for the pods suite, each socket made inside its
/// pod's namespace (a socket keeps the namespace it was made in).
mod traffic {
    use std::{
        io::{Read as _, Write as _},
        net::{TcpListener, TcpStream},
        time::{Duration, Instant},
    };

    use netkit::os::netns::{self, NetnsRef};

    fn within<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                netns::enter(&NetnsRef::Name(ns.to_string())).expect("entering a pod's namespace");
                f()
            })
            .join()
            .unwrap()
        })
    }

    fn pair(client_ns: &str, server_ns: &str, server_ip: &str) -> (TcpStream, std::thread::JoinHandle<TcpStream>) {
        let listener = within(server_ns, || TcpListener::bind((server_ip, 0)).expect("binding in the server pod"));
        let addr = listener.local_addr().unwrap();
        let accept = std::thread::spawn(move || listener.accept().expect("accepting").0);
        let client =
            within(client_ns, || TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connecting"));
        (client, accept)
    }

    /// Mbit/s of one TCP stream for `secs`, as the receiver counts it (from
    /// its first byte to the sender's end: nothing left in a buffer counts).
    pub fn stream(client_ns: &str, server_ns: &str, server_ip: &str, secs: f64) -> f64 {
        let (mut client, accept) = pair(client_ns, server_ns, server_ip);
        let receiver = std::thread::spawn(move || {
            let mut s = accept.join().unwrap();
            let mut buf = vec![0u8; 1 << 16];
            let n = s.read(&mut buf).unwrap();
            let t = Instant::now();
            let mut total = 0usize;
            loop {
                match s.read(&mut buf).unwrap() {
                    0 => break,
                    m => total += m,
                }
            }
            assert!(n > 0, "the stream carried nothing");
            (total, t.elapsed().as_secs_f64())
        });
        let buf = vec![0x5au8; 1 << 16];
        let end = Instant::now() + Duration::from_secs_f64(secs);
        while Instant::now() < end {
            client.write_all(&buf).unwrap();
        }
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let (bytes, took) = receiver.join().unwrap();
        bytes as f64 * 8.0 / took / 1e6
    }

    /// Request/response: one byte each way, one transaction at a time, as
    /// netperf's TCP_RR does.
    #[derive(Default, Clone)]
    pub struct Rr {
        pub transactions: u64,
        pub secs: f64,
        latencies_us: Vec<f64>,
    }

    impl Rr {
        pub fn add(&mut self, other: Rr) {
            self.transactions += other.transactions;
            self.secs += other.secs;
            self.latencies_us.extend(other.latencies_us);
        }

        pub fn percentile(&self, p: f64) -> f64 {
            let mut v = self.latencies_us.clone();
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[((v.len() - 1) as f64 * p).round() as usize]
        }
    }

    pub fn rr(client_ns: &str, server_ns: &str, server_ip: &str, secs: f64) -> Rr {
        let (mut client, accept) = pair(client_ns, server_ns, server_ip);
        client.set_nodelay(true).unwrap();
        let server = std::thread::spawn(move || {
            let mut s = accept.join().unwrap();
            s.set_nodelay(true).unwrap();
            let mut b = [0u8; 1];
            while s.read(&mut b).unwrap() == 1 {
                s.write_all(&b).unwrap();
            }
        });
        let mut out = Rr::default();
        let start = Instant::now();
        let end = start + Duration::from_secs_f64(secs);
        let mut b = [1u8; 1];
        while Instant::now() < end {
            let t = Instant::now();
            client.write_all(&b).unwrap();
            client.read_exact(&mut b).unwrap();
            out.latencies_us.push(t.elapsed().as_secs_f64() * 1e6);
            out.transactions += 1;
        }
        out.secs = start.elapsed().as_secs_f64();
        drop(client);
        server.join().unwrap();
        out
    }
}

/// One CNI command as a runtime runs it: its own process, the configuration
/// on stdin, the pod's namespace under /run/netns. Its time in ms and what it
/// printed (the result, for ADD).
fn cni_exec(exe: &str, plugins: &str, conf: &str, command: &str, id: &str, pod: &str) -> (f64, String) {
    use std::io::Write as _;
    let t = Instant::now();
    let mut child = cni_command(exe, plugins, command, id, pod)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(conf.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{exe} {command} {id}: {stdout}");
    (t.elapsed().as_secs_f64() * 1e3, stdout)
}

/// The plugin `exe` as a runtime starts it for `command` on container `id`
/// in the pod namespace `pod` (under /run/netns).
fn cni_command(exe: &str, plugins: &str, command: &str, id: &str, pod: &str) -> Command {
    let mut c = Command::new(exe);
    c.env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", format!("/run/netns/{pod}"))
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", plugins);
    c
}

/// The CNI plugin's reference plugins and the plugin itself, as the guest
/// (or a node) has them.
fn cni_plugins() -> (String, String) {
    let plugins = std::env::var("NETKIT_TEST_CNI_PATH").unwrap_or_else(|_| "/opt/cni/bin".into());
    let plugin = std::env::var("NETKIT_BENCH_CNI").unwrap_or_else(|_| format!("{plugins}/netkit-cni"));
    (plugins, plugin)
}

/// The CNI plugin: per-pod ADD and DEL latency against the floor, and a
/// concurrent ADD storm that must leave nothing behind after its DELs.
fn cni() -> Value {
    const PODS: usize = 20;
    const STORM: usize = 50;
    const NETKIT_PEER: u32 = 55;
    let node = BenchNs::new("cni");
    let (plugins, plugin) = cni_plugins();
    let dir = std::env::temp_dir().join(format!("nkbench-cni-{}", std::process::id()));
    let bpffs = dir.join("bpffs");
    std::fs::create_dir_all(&bpffs).unwrap();
    assert!(Command::new("mount").args(["-t", "bpf", "bpf"]).arg(&bpffs).status().unwrap().success());
    let conf = json!({
        "cniVersion": "1.1.0", "name": "bench", "type": "netkit-cni",
        "bpffs": bpffs, "stateDir": dir.join("state"),
        "chains": [{"hook": "peer", "programs": [{"name": "fw", "program": "firewall", "rules": ["src 10.0.0.9 deny"]}]}],
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.40.0.0/16"}]], "dataDir": dir.join("ipam")},
    })
    .to_string();
    let pods: Vec<String> = (0..PODS.max(STORM)).map(|i| format!("{}-p{i}", node.0)).collect();
    for p in &pods {
        netns::create(p).unwrap();
    }
    let exec = |exe: &str, command: &str, id: &str, pod: &str| cni_exec(exe, &plugins, &conf, command, id, pod).0;
    let leftovers = || {
        let links = Command::new("ip").args(["-o", "link", "show"]).output().unwrap();
        let pairs = String::from_utf8_lossy(&links.stdout).lines().filter(|l| l.contains(": nk")).count();
        let (pins, allocations) = leftover_files(&bpffs, &[dir.join("ipam")]);
        (pairs, pins, allocations)
    };

    eprintln!("cni: ADD and DEL, one pod at a time");
    let add: Vec<f64> = (0..PODS).map(|i| exec(&plugin, "ADD", &format!("ctr{i}"), &pods[i])).collect();
    let del: Vec<f64> = (0..PODS).map(|i| exec(&plugin, "DEL", &format!("ctr{i}"), &pods[i])).collect();
    assert_eq!(leftovers(), (0, 0, 0), "the sequential pods left something");

    eprintln!("cni: host-local alone");
    let ipam = format!("{plugins}/host-local");
    let ipam_add: Vec<f64> = (0..PODS).map(|i| exec(&ipam, "ADD", &format!("ipam{i}"), &pods[i])).collect();
    let ipam_del: Vec<f64> = (0..PODS).map(|i| exec(&ipam, "DEL", &format!("ipam{i}"), &pods[i])).collect();

    eprintln!("cni: floor");
    let rule = Rule::parse(&["src".into(), "10.0.0.9".into(), "deny".into()]).unwrap();
    let pins = bpffs.join("floor");
    let (floor_add, floor_del) = runtime().block_on(async {
        use netlink_packet_route::{
            link::{InfoData, InfoKind, InfoNetkit, NetkitMode, NetkitPolicy},
            route::RouteScope,
        };
        use rtnetlink::{LinkMessageBuilder, LinkNetkit, LinkUnspec, RouteMessageBuilder};
        let nl = Netlink::connect().unwrap();
        let handle = nl.handle();
        let (mut adds, mut dels) = (Vec::new(), Vec::new());
        let mut made = Vec::new();
        for (i, pod) in pods.iter().enumerate().take(PODS) {
            let t = Instant::now();
            let ns = netns::NetnsRef::Name(pod.clone());
            let fd = ns.open().unwrap();
            let name = format!("nkf{i}");
            let peer =
                LinkMessageBuilder::<LinkUnspec>::new().name("eth0".to_string()).setns_by_fd(fd.as_raw_fd()).build();
            let msg = LinkMessageBuilder::<LinkNetkit>::new_with_info_kind(InfoKind::Netkit)
                .name(name.clone())
                .set_info_data(InfoData::Netkit(vec![
                    InfoNetkit::Mode(NetkitMode::L3),
                    InfoNetkit::PeerPolicy(NetkitPolicy::Drop),
                    InfoNetkit::Peer(peer),
                ]))
                .build();
            handle.link().add(msg).execute().await.unwrap();
            let index = nl.link_by_name(&name).unwrap().unwrap().index;
            handle.link().change(LinkUnspec::new_with_index(index).up().build()).execute().await.unwrap();
            let fw = programs::load(&ProgSpec::Bundled("firewall".into()), &LoadOptions::default()).unwrap();
            Firewall::open(fw.id()).unwrap().add(&rule).unwrap();
            let link = floor::link_create(fw.fd.as_fd(), index, NETKIT_PEER);
            let pin = pins.join(&name);
            std::fs::create_dir_all(&pins).unwrap();
            floor::obj_pin(link.as_fd(), &pin);
            let pod_nl = Netlink::connect_to(&ns).unwrap();
            let pod_handle = pod_nl.handle();
            let eth0 = pod_nl.link_by_name("eth0").unwrap().unwrap().index;
            pod_handle.link().change(LinkUnspec::new_with_index(eth0).up().build()).execute().await.unwrap();
            let addr = std::net::Ipv4Addr::new(10, 41, (i / 250) as u8, (i % 250 + 2) as u8);
            pod_handle.address().add(eth0, addr.into(), 16).execute().await.unwrap();
            let default =
                RouteMessageBuilder::<std::net::Ipv4Addr>::new().output_interface(eth0).scope(RouteScope::Link).build();
            pod_handle.route().add(default).execute().await.unwrap();
            let back = RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                .destination_prefix(addr, 32)
                .output_interface(index)
                .scope(RouteScope::Link)
                .build();
            handle.route().add(back).execute().await.unwrap();
            let pass = LinkMessageBuilder::<LinkNetkit>::new_with_info_kind(InfoKind::Netkit)
                .index(index)
                .set_info_data(InfoData::Netkit(vec![InfoNetkit::PeerPolicy(NetkitPolicy::Pass)]))
                .build();
            handle.link().change(pass).execute().await.unwrap();
            adds.push(t.elapsed().as_secs_f64() * 1e3);
            made.push((index, pin));
        }
        for (index, pin) in made {
            let t = Instant::now();
            handle.link().del(index).execute().await.unwrap();
            std::fs::remove_file(&pin).unwrap();
            dels.push(t.elapsed().as_secs_f64() * 1e3);
        }
        (adds, dels)
    });

    eprintln!("cni: {STORM} ADDs at once");
    let t = Instant::now();
    std::thread::scope(|s| {
        for (i, pod) in pods.iter().enumerate().take(STORM) {
            let exec = &exec;
            let plugin = &plugin;
            s.spawn(move || exec(plugin, "ADD", &format!("storm{i}"), pod));
        }
    });
    let storm_add_ms = t.elapsed().as_secs_f64() * 1e3;
    let (devices_up, _, allocated) = leftovers();
    assert_eq!(devices_up, STORM, "the storm made {devices_up} pairs for {STORM} pods");
    assert_eq!(allocated, STORM, "the storm allocated {allocated} addresses for {STORM} pods");
    let t = Instant::now();
    std::thread::scope(|s| {
        for (i, pod) in pods.iter().enumerate().take(STORM) {
            let exec = &exec;
            let plugin = &plugin;
            s.spawn(move || exec(plugin, "DEL", &format!("storm{i}"), pod));
        }
    });
    let storm_del_ms = t.elapsed().as_secs_f64() * 1e3;
    let left = leftovers();
    assert_eq!(left, (0, 0, 0), "the storm left (devices, pins, allocations) {left:?}");

    for p in &pods {
        let _ = netns::delete(p);
    }
    let _ = Command::new("umount").arg(&bpffs).status();
    let _ = std::fs::remove_dir_all(&dir);
    let (add, del, floor_add, floor_del) = (median(add), median(del), median(floor_add), median(floor_del));
    let (ipam_add, ipam_del) = (median(ipam_add), median(ipam_del));
    json!({
        "suite": "cni",
        "pods": PODS,
        "storm": STORM,
        "add_ms": add,
        "del_ms": del,
        "floor_add_ms": floor_add,
        "floor_del_ms": floor_del,
        "ipam_add_ms": ipam_add,
        "ipam_del_ms": ipam_del,
        "add_over_floor": add / floor_add,
        "del_over_floor": del / floor_del,
        "add_over_floor_and_ipam": add / (floor_add + ipam_add),
        "del_over_floor_and_ipam": del / (floor_del + ipam_del),
        "storm_add_ms": storm_add_ms,
        "storm_del_ms": storm_del_ms,
        "storm_leftovers": 0,
    })
}

/// What one process cost: wall time, CPU time (user + system) and peak
/// resident memory, as wait4(2) reports them for that process alone.
#[derive(Clone, Copy, Default)]
struct Cost {
    wall_ms: f64,
    cpu_ms: f64,
    rss_kib: f64,
}

impl Cost {
    fn of(cmd: &mut Command) -> Cost {
        Self::measure(cmd, true)
    }

    /// [`Cost::of`] a command that must fail.
    fn refused(cmd: &mut Command) -> Cost {
        Self::measure(cmd, false)
    }

    // The child is reaped by wait4 below (std's wait gives no rusage).
    #[allow(clippy::zombie_processes)]
    fn measure(cmd: &mut Command, ok: bool) -> Cost {
        let err = std::env::temp_dir().join(format!("nkbench-stderr-{}", std::process::id()));
        let t = Instant::now();
        let child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let mut status = 0;
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: the child is ours and not yet waited for; wait4 writes one
        // status and one rusage into what it is given.
        let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut ru) };
        let wall_ms = t.elapsed().as_secs_f64() * 1e3;
        assert_eq!(pid, child.id() as libc::pid_t);
        let stderr = std::fs::read_to_string(&err).unwrap_or_default();
        let _ = std::fs::remove_file(&err);
        assert!(libc::WIFEXITED(status), "{cmd:?} ended by a signal ({status:#x}): {stderr}");
        assert_eq!(libc::WEXITSTATUS(status) == 0, ok, "{cmd:?} exited {}: {stderr}", libc::WEXITSTATUS(status));
        let tv = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
        Cost { wall_ms, cpu_ms: tv(ru.ru_utime) + tv(ru.ru_stime), rss_kib: ru.ru_maxrss as f64 }
    }

    /// The median of each figure over `runs` runs of `make()`'s command.
    fn median_of(runs: usize, mut make: impl FnMut(usize) -> Command) -> Cost {
        Cost::median((0..runs).map(|i| Cost::of(&mut make(i))).collect())
    }

    fn median(costs: Vec<Cost>) -> Cost {
        Cost {
            wall_ms: median(costs.iter().map(|c| c.wall_ms).collect()),
            cpu_ms: median(costs.iter().map(|c| c.cpu_ms).collect()),
            rss_kib: median(costs.iter().map(|c| c.rss_kib).collect()),
        }
    }

    fn json(self) -> Value {
        json!({ "wall_ms": self.wall_ms, "cpu_ms": self.cpu_ms, "rss_kib": self.rss_kib })
    }
}

/// A node of `n` pods, made by `netkit apply` and measured, then made again
/// by the CNI plugin for one more ADD and DEL. `host`: natively with veth
/// pairs (tcx ingress is the peer hook); otherwise netkit pairs in the VM.
fn scale_size(node: &BenchNs, host: bool, n: usize, bpftool: &str) -> Value {
    const RUNS: usize = 5;
    let kind = if host { "veth" } else { "netkit" };
    let dir = std::env::temp_dir().join(format!("nkbench-scale-{}-{n}", std::process::id()));
    let bpffs = dir.join("bpffs");
    std::fs::create_dir_all(&bpffs).unwrap();
    assert!(Command::new("mount").args(["-t", "bpf", "bpf"]).arg(&bpffs).status().unwrap().success());
    let (bpffs_s, state) = (bpffs.display().to_string(), dir.join("state.json"));
    let state_s = state.display().to_string();
    let pods: Vec<String> = (0..n).map(|i| format!("{}-p{i}", node.0)).collect();
    for p in &pods {
        netns::create(p).unwrap();
    }
    let bin = netkit_bin();
    let netkit = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.args(["--bpffs", &bpffs_s]).args(args);
        c
    };
    // The spec: every pod's pair and chain; `rule` is pod 0's firewall rule,
    // so that two specs differ in one pod's rule alone.
    let spec = |rule: &str| {
        let mut s = String::from("pairs:\n");
        for (i, p) in pods.iter().enumerate() {
            s += &format!("  - {{name: s{i}, kind: {kind}, peer: {{name: eth0, netns: {p}}}}}\n");
        }
        s += "chains:\n";
        for i in 0..n {
            let r = if i == 0 { rule } else { "src 10.0.0.9 deny" };
            s += &format!(
                "  - device: s{i}\n    hook: peer\n    programs:\n      - {{name: fw, program: firewall, rules: ['{r}']}}\n      - {{name: c, program: counter}}\n"
            );
        }
        s
    };
    let specs: Vec<PathBuf> = ["src 10.0.0.9 deny", "src 10.0.0.10 deny"]
        .iter()
        .enumerate()
        .map(|(k, rule)| {
            let path = dir.join(format!("spec{k}.yaml"));
            std::fs::write(&path, spec(rule)).unwrap();
            path
        })
        .collect();
    let spec_s: Vec<String> = specs.iter().map(|p| p.display().to_string()).collect();
    eprintln!("scale: {n} pods by apply");
    let t = Instant::now();
    Cost::of(&mut netkit(&["apply", "-f", &spec_s[0], "--state", &state_s, "--jobs", "8"]));
    let bring_up_ms = t.elapsed().as_secs_f64() * 1e3;

    eprintln!("scale: {n} pods: listings");
    let mut m = serde_json::Map::new();
    let mut put = |k: &str, c: Cost| {
        m.insert(k.into(), c.json());
    };
    let ip_bin = std::env::var("NETKIT_TEST_IP").unwrap_or_else(|_| "ip".into());
    put("device_list_all", Cost::median_of(RUNS, |_| netkit(&["device", "list", "--all"])));
    put("device_list", Cost::median_of(RUNS, |_| netkit(&["device", "list"])));
    put(
        "ip_link_show",
        Cost::median_of(RUNS, |_| {
            let mut c = Command::new(&ip_bin);
            c.args(["-d", "-j", "link", "show"]);
            c
        }),
    );
    // The kernel's floor for what `device list` shows (C: benches/floor).
    if let Ok(floor) = std::env::var("NETKIT_BENCH_FLOOR") {
        put(
            "floor_pairs",
            Cost::median_of(RUNS, |_| {
                let mut c = Command::new(&floor);
                c.arg("pairs");
                c
            }),
        );
    }
    put("query", Cost::median_of(RUNS, |_| netkit(&["query"])));
    put(
        "bpftool_net_show",
        Cost::median_of(RUNS, |_| {
            let mut c = Command::new(bpftool);
            c.args(["net", "show"]);
            c
        }),
    );
    put("link_list_all", Cost::median_of(RUNS, |_| netkit(&["link", "list", "--all"])));
    put(
        "bpftool_link_show",
        Cost::median_of(RUNS, |_| {
            let mut c = Command::new(bpftool);
            c.args(["link", "show"]);
            c
        }),
    );
    // With -f bpftool walks the bpffs for pins, as `link list --all` does.
    put(
        "bpftool_link_show_pins",
        Cost::median_of(RUNS, |_| {
            let mut c = Command::new(bpftool);
            c.args(["-f", "link", "show"]);
            c
        }),
    );
    put("stats", Cost::median_of(RUNS, |_| netkit(&["stats"])));
    put("export", Cost::median_of(RUNS, |_| netkit(&["export", "--state", &state_s])));
    eprintln!("scale: {n} pods: apply");
    put("apply_noop", Cost::median_of(RUNS, |_| netkit(&["apply", "-f", &spec_s[0], "--state", &state_s])));
    // Each run changes pod 0's rule, back and forth; the last run leaves spec 0.
    put(
        "apply_one_pod",
        Cost::median_of(RUNS + 1, |i| netkit(&["apply", "-f", &spec_s[(i + 1) % 2], "--state", &state_s])),
    );

    // What any apply of this spec does whatever its plan, beside reading
    // each pair (floor_pairs): parsing the whole spec. The binary itself, on
    // the spec with a mistake in its last line: it parses the whole file,
    // then refuses before it reads the node.
    let bad = dir.join("spec-bad.yaml");
    std::fs::write(&bad, spec("src 10.0.0.9 deny") + "    bogus: 1\n").unwrap();
    let bad_s = bad.display().to_string();
    put("spec_parse", Cost::median((0..RUNS).map(|_| Cost::refused(&mut netkit(&["diff", "-f", &bad_s]))).collect()));

    eprintln!("scale: {n} pods: a /metrics scrape");
    let port = 9475 + n as u16 % 1000;
    let listen = format!("127.0.0.1:{port}");
    let mut server = netkit(&["metrics", "--listen", &listen])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let scrape = || -> usize {
        use std::io::{Read as _, Write as _};
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut conn = loop {
            match std::net::TcpStream::connect(&listen) {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("the metrics server never listened: {e}"),
            }
        };
        conn.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {listen}\r\nConnection: close\r\n\r\n").as_bytes())
            .unwrap();
        let mut body = Vec::new();
        conn.read_to_end(&mut body).unwrap();
        assert!(body.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&body[..body.len().min(200)]));
        body.len()
    };
    scrape(); // the server is up and has served once
    // The server's CPU time in ms over all its threads, in ns resolution
    // (schedstat's first field; /proc/PID/stat counts clock ticks).
    let proc_cpu_ms = |pid: u32| -> f64 {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
        tasks
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
            .filter_map(|s| s.split_whitespace().next().and_then(|ns| ns.parse::<f64>().ok()))
            .sum::<f64>()
            / 1e6
    };
    let (mut walls, mut cpus) = (Vec::new(), Vec::new());
    let mut bytes = 0;
    for _ in 0..RUNS {
        let (t, c) = (Instant::now(), proc_cpu_ms(server.id()));
        bytes = scrape();
        walls.push(t.elapsed().as_secs_f64() * 1e3);
        cpus.push(proc_cpu_ms(server.id()) - c);
    }
    // The scrapes were this server's (not one left by an earlier run on the port).
    assert!(server.try_wait().unwrap().is_none(), "the metrics server exited: was the port taken?");
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.id())).unwrap();
    let hwm: f64 =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap().trim().trim_end_matches(" kB").parse().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    put("metrics_scrape", Cost { wall_ms: median(walls), cpu_ms: median(cpus), rss_kib: hwm });

    // The same pods by the CNI plugin: N attachments present, then one more
    // ADD and its DEL, each its own process as a runtime runs it.
    eprintln!("scale: {n} pods: CNI");
    let empty = dir.join("empty.yaml");
    std::fs::write(&empty, "{}\n").unwrap();
    Cost::of(&mut netkit(&["apply", "-f", &empty.display().to_string(), "--state", &state_s, "--prune"]));
    assert_eq!(node_devices(), ["lo"], "apply --prune left devices");
    let (plugins, plugin) = cni_plugins();
    let conf = json!({
        "cniVersion": "1.1.0", "name": "scale", "type": "netkit-cni", "kind": kind,
        "bpffs": bpffs, "stateDir": dir.join("cni-state"),
        "chains": [{"hook": "peer", "programs": [
            {"name": "fw", "program": "firewall", "rules": ["src 10.0.0.9 deny"]},
            {"name": "c", "program": "counter"},
        ]}],
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.60.0.0/16"}]], "dataDir": dir.join("ipam")},
    })
    .to_string();
    // Every pod's ADD (or DEL), eight at a time, as a node's runtime runs them.
    let all = |command: &str| {
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let Some(p) = pods.get(i) else { break };
                        cni_exec(&plugin, &plugins, &conf, command, &format!("c{i}"), p);
                    }
                });
            }
        });
    };
    all("ADD");
    let extra = format!("{}-extra", node.0);
    netns::create(&extra).unwrap();
    // Each ADD or DEL is one short process whose time varies by tens of ms
    // from run to run on this machine: more runs than the listings.
    const CNI_RUNS: usize = 2 * RUNS + 1;
    // The medians of `exe`'s ADD and DEL of container `id`, one after the other.
    let add_del = |exe: &str, id: &str| {
        let (mut adds, mut dels) = (Vec::new(), Vec::new());
        for _ in 0..CNI_RUNS {
            adds.push(cost_with_stdin(&mut cni_command(exe, &plugins, "ADD", id, &extra), &conf));
            dels.push(cost_with_stdin(&mut cni_command(exe, &plugins, "DEL", id, &extra), &conf));
        }
        (Cost::median(adds), Cost::median(dels))
    };
    let (add, del) = add_del(&plugin, "extra");
    put("cni_add", add);
    put("cni_del", del);
    // The IPAM plugin's part: host-local alone, on the same allocations.
    let (add, del) = add_del(&format!("{plugins}/host-local"), "extra-ipam");
    put("host_local_add", add);
    put("host_local_del", del);
    all("DEL");
    let left = leftover_files(&bpffs, &[dir.join("ipam")]);
    assert_eq!(left, (0, 0), "the CNI pods left (pins, address allocations) {left:?}");
    assert_eq!(node_devices(), ["lo"], "the CNI pods left devices");

    // The bring-up and the prune again, warm, each way twice in turn: with
    // the kernel's grace periods as they are, and expedited for the
    // duration (apply --expedite). Natively only: under emulation the
    // grace period is not what a change waits for.
    let knob = std::fs::read_to_string(netkit::os::rcu::KNOB).unwrap_or_default().trim().to_string();
    let (mut up, mut down) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    let empty_s = empty.display().to_string();
    for round in 0..if host { 4 } else { 0 } {
        let fast = round % 2;
        let extra: &[&str] = if fast == 1 { &["--expedite"] } else { &[] };
        eprintln!("scale: {n} pods by apply{}", if fast == 1 { " --expedite" } else { "" });
        let t = Instant::now();
        Cost::of(netkit(&["apply", "-f", &spec_s[0], "--state", &state_s, "--jobs", "8"]).args(extra));
        up[fast].push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        Cost::of(netkit(&["apply", "-f", &empty_s, "--state", &state_s, "--prune"]).args(extra));
        down[fast].push(t.elapsed().as_secs_f64() * 1e3);
    }
    assert_eq!(node_devices(), ["lo"], "apply --prune left devices");
    netns::delete(&extra).unwrap();
    for p in &pods {
        netns::delete(p).unwrap();
    }
    let _ = Command::new("umount").arg(&bpffs).status();
    let _ = std::fs::remove_dir_all(&dir);
    let mut out = json!({
        "pods": n,
        // Each pod: its pair, and two links on its peer hook.
        "changes": 3 * n,
        "first_bring_up_ms": bring_up_ms,
        "rcu_expedited_before": knob,
        "metrics_bytes": bytes,
        "commands": Value::Object(m),
    });
    if host {
        out["bring_up_ms"] = json!(median(up[0].clone()));
        out["bring_up_expedited_ms"] = json!(median(up[1].clone()));
        out["prune_ms"] = json!(median(down[0].clone()));
        out["prune_expedited_ms"] = json!(median(down[1].clone()));
    }
    out
}

/// The names of the devices in this thread's namespace, by ip.
fn node_devices() -> Vec<String> {
    let out = Command::new("ip").args(["-o", "link", "show"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap().to_string())
        .collect()
}

/// `cmd` with `input` on its standard input, its cost as [`Cost::of`] reads it.
fn cost_with_stdin(cmd: &mut Command, input: &str) -> Cost {
    let path = std::env::temp_dir().join(format!("nkbench-stdin-{}", std::process::id()));
    std::fs::write(&path, input).unwrap();
    let c = Cost::of(cmd.stdin(std::fs::File::open(&path).unwrap()));
    let _ = std::fs::remove_file(&path);
    c
}

/// The scale suite: two node sizes in one run, so growth shows as a ratio.
fn scale(host: bool) -> Value {
    // NETKIT_BENCH_SCALE=SMALL,LARGE overrides the sizes (a quick try).
    let sizes: Vec<usize> = match std::env::var("NETKIT_BENCH_SCALE") {
        Ok(v) => v.split(',').map(|n| n.trim().parse().expect("NETKIT_BENCH_SCALE: two numbers")).collect(),
        Err(_) if host => vec![10, 1000],
        Err(_) => vec![10, 200],
    };
    let bpftool = std::env::var("NETKIT_BENCH_BPFTOOL").unwrap_or_else(|_| "bpftool".into());
    let node = BenchNs::new("scale");
    ip(&["link", "set", "lo", "up"]);
    ip(&["addr", "add", "10.99.0.1/32", "dev", "lo"]);
    let results: Vec<Value> = sizes.iter().map(|&n| scale_size(&node, host, n, &bpftool)).collect();
    let version = Command::new(&bpftool)
        .arg("version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").to_string())
        .unwrap_or_default();
    json!({ "suite": "scale", "host": host, "kind": if host { "veth" } else { "netkit" }, "bpftool": version, "sizes": results })
}

/// CPU time (user + system, ms) of `cmd`'s process: the growth of this
/// process's children's rusage across the run, which counts the child once
/// it is waited for.
fn child_cpu_ms(cmd: &mut Command) -> f64 {
    fn children() -> f64 {
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage writes one rusage into the struct it is given.
        assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) }, 0);
        let tv = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
        tv(ru.ru_utime) + tv(ru.ru_stime)
    }
    let before = children();
    let out = cmd.output().expect("the command runs");
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    children() - before
}

/// This thread's CPU time in ms (the scheduler's account, not sampled).
fn thread_cpu_ms() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the struct it is given.
    assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) }, 0);
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

/// The median CPU ms of `f` on this thread over `n` runs.
fn in_process_ms(n: usize, mut f: impl FnMut()) -> f64 {
    median(
        (0..n)
            .map(|_| {
                let t = thread_cpu_ms();
                f();
                thread_cpu_ms() - t
            })
            .collect(),
    )
}

/// What the floor's `attach` loads: the bundled `counter` as the lean
/// loader relocates it, with the map fds the floor will give its maps (see
/// benches/floor/startup.c for the format).
fn counter_recipe() -> String {
    let bundled = BUNDLED.iter().find(|b| b.name == "counter").expect("counter is bundled");
    let image = programs::image(bundled.object().expect("a full build"), bundled.function, &[], 100).unwrap();
    let mut recipe = String::new();
    for (name, m, fd) in &image.maps {
        recipe += &format!(
            "map {} {} {} {} {} {fd} {name}\n",
            m.map_type(),
            m.key_size(),
            m.value_size(),
            m.max_entries(),
            m.map_flags()
        );
    }
    let license = image.license.replace(' ', "_");
    recipe += &format!("prog {} {license} {}\n", bundled.function, image.insns.len());
    for word in &image.insns {
        recipe += &format!("{word:x}\n");
    }
    recipe
}

/// Per process: `netkit device list`, `netkit query` and `netkit attach`
/// against a static C process issuing the same requests; where an attach's
/// time goes, and what reading the kernel's BTF would add. In the VM on
/// netkit pairs (primary hook); with `host`, natively on veth pairs (tcx
/// ingress, and `device list --all`, as the host has no netkit).
fn startup(host: bool) -> Value {
    const PAIRS: usize = 8;
    const RUNS: usize = 30;
    let node = BenchNs::new("startup");
    let bpffs = std::env::temp_dir().join(format!("nkbench-startup-{}", std::process::id()));
    std::fs::create_dir_all(&bpffs).unwrap();
    assert!(Command::new("mount").args(["-t", "bpf", "bpf"]).arg(&bpffs).status().unwrap().success());
    let bpffs_s = bpffs.display().to_string();
    let floor = std::env::var("NETKIT_BENCH_FLOOR").expect("NETKIT_BENCH_FLOOR: the static startup floor");
    let bin = netkit_bin();
    let netkit = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.args(["--bpffs", &bpffs_s]).args(args);
        c
    };
    let hook = if host { "ingress" } else { "primary" };
    for i in 0..PAIRS {
        let (name, peer) = (format!("pod{i}"), format!("pod{i}-p"));
        if host {
            ip(&["link", "add", &name, "type", "veth", "peer", "name", &peer]);
        } else {
            child_cpu_ms(&mut netkit(&["device", "add", &name, "--peer", &peer]));
        }
    }
    for p in ["counter", "firewall", "pass"] {
        child_cpu_ms(&mut netkit(&["attach", "pod0", hook, p]));
    }
    let recipe = bpffs.with_extension("recipe");
    std::fs::write(&recipe, counter_recipe()).unwrap();
    let recipe_s = recipe.display().to_string();

    let pair = |tool: &mut dyn FnMut() -> Command, floor_cmd: &mut dyn FnMut() -> Command| {
        let (mut t, mut f) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            t.push(child_cpu_ms(&mut tool()));
            f.push(child_cpu_ms(&mut floor_cmd()));
        }
        let (t, f) = (median(t), median(f));
        json!({ "netkit_ms": t, "floor_ms": f, "ratio": t / f })
    };
    let list_args: &[&str] = if host { &["device", "list", "--all"] } else { &["device", "list"] };
    let device_list = pair(&mut || netkit(list_args), &mut || {
        let mut c = Command::new(&floor);
        c.arg("device-list");
        if host {
            c.arg("all");
        }
        c
    });
    let query = pair(&mut || netkit(&["query", "pod0", hook]), &mut || {
        let mut c = Command::new(&floor);
        c.args(["query", "pod0", hook, &bpffs_s, &node.0]);
        c
    });
    // Each attach is undone before the next (not counted): the chain stays one long.
    let (mut t, mut f) = (Vec::new(), Vec::new());
    for i in 0..RUNS {
        let pin = format!("s{i}");
        t.push(child_cpu_ms(&mut netkit(&["attach", "pod1", hook, "counter", "--pin", &pin])));
        child_cpu_ms(&mut netkit(&["detach", "pod1", hook, &pin]));
        let floor_pin = bpffs.join(format!("floor-{i}"));
        let mut c = Command::new(&floor);
        c.args(["attach", "pod1", hook, &recipe_s]).arg(&floor_pin);
        f.push(child_cpu_ms(&mut c));
        std::fs::remove_file(&floor_pin).unwrap();
    }
    let (attach_t, attach_f) = (median(t), median(f));

    // Where an attach's time goes, measured in this process.
    let counter = BUNDLED.iter().find(|b| b.name == "counter").unwrap().object().unwrap();
    let start: Vec<f64> = (0..RUNS).map(|_| child_cpu_ms(&mut netkit(&["--version"]))).collect();
    let parse = in_process_ms(RUNS, || drop(aya_obj::Object::parse(counter).unwrap()));
    let load = in_process_ms(RUNS, || {
        drop(programs::load(&ProgSpec::Bundled("counter".into()), &LoadOptions::default()).unwrap());
    });
    let btf = in_process_ms(5, || drop(aya::Btf::from_sys_fs().unwrap()));
    let _ = std::fs::remove_file(&recipe);
    let _ = std::fs::remove_dir_all(bpffs.join("netkit"));
    let _ = Command::new("umount").arg(&bpffs).status();
    json!({
        "suite": "startup",
        "host": host,
        "hook": hook,
        "runs": RUNS,
        "pairs": PAIRS,
        "device_list": device_list,
        "query": query,
        "attach": { "netkit_ms": attach_t, "floor_ms": attach_f, "ratio": attach_t / attach_f },
        "attach_parts": {
            "process_ms": median(start),
            "parse_ms": parse,
            "load_ms": load,
            "kernel_btf_ms": btf,
        },
    })
}
