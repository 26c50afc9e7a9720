//! Helpers shared by the integration tests: the binary under test, root and
//! kernel-feature gates that skip visibly, and throw-away bpffs mounts.
#![allow(dead_code)]

pub mod apply;
pub mod cni;
pub mod hooks;
pub mod json_shape;
pub mod witness;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

/// The `netkit` binary under test: `$NETKIT_BIN` in the VM, else cargo's.
pub fn bin() -> PathBuf {
    std::env::var_os("NETKIT_BIN").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_BIN_EXE_netkit").into())
}

pub fn netkit() -> Command {
    Command::new(bin())
}

/// Runs `netkit ARGS`, returning the output whatever the exit status.
pub fn run(args: &[&str]) -> Output {
    netkit().args(args).output().expect("netkit runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `netkit ARGS` and panics with its output unless it succeeds.
pub fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(o.status.success(), "netkit {args:?} failed ({}):\n{}{}", o.status, stdout(&o), stderr(&o));
    stdout(&o)
}

/// Runs `netkit ARGS`, expects failure, returns stderr.
pub fn fails(args: &[&str]) -> String {
    let o = run(args);
    assert!(!o.status.success(), "netkit {args:?} should have failed:\n{}{}", stdout(&o), stderr(&o));
    stderr(&o)
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Prints a visible SKIP line (counted by `cargo xtask test`). Written to the
/// real stderr: libtest captures only the print macros, and a captured line
/// of a passing test would never be seen.
pub fn skip(why: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "\nSKIP: {why}");
}

/// Skips the calling test unless running as root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::common::is_root() {
            $crate::common::skip("needs root");
            return;
        }
    };
}

/// A bpffs mounted on a fresh temporary directory, unmounted on drop, so
/// tests never touch /sys/fs/bpf.
pub struct Bpffs {
    pub path: PathBuf,
}

impl Bpffs {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("netkit-test-bpffs-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&path).unwrap();
        let status = Command::new("mount").args(["-t", "bpf", "bpf"]).arg(&path).status().unwrap();
        assert!(status.success(), "mount -t bpf failed");
        Self { path }
    }

    pub fn arg(&self) -> String {
        self.path.display().to_string()
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// The iproute2 `ip` to run: `NETKIT_TEST_IP` (the full iproute2 the VM
/// carries; busybox's knows no netkit and no veth peers) or the one on PATH.
pub fn ip_bin() -> String {
    std::env::var("NETKIT_TEST_IP").ok().filter(|p| Path::new(p).is_file()).unwrap_or_else(|| "ip".into())
}

/// A number unique within this process, for names.
pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// A network namespace for one test, gone (with every device in it) when
/// dropped: a named one under /run/netns, or an unnamed one as container
/// runtimes make them, held by a process.
pub struct TestNs {
    /// What `-n` and `--peer-netns` take for it: the /run/netns name, or
    /// `pid:PID` for an unnamed one.
    pub name: String,
    /// Its nsfs file.
    pub path: PathBuf,
    /// For an unnamed namespace: the process that keeps it alive.
    holder: Option<std::process::Child>,
}

impl TestNs {
    /// A namespace like a node's: devices came and went before the test, so
    /// the next device it makes is not ifindex 2 (see [`TestNs::advance`]).
    /// Then no device here shares its ifindex with the first device of a
    /// [`TestNs::pod`] by chance, which once hid a bug.
    pub fn new(tag: &str) -> Self {
        let ns = Self::fresh(tag);
        ns.advance();
        ns
    }

    /// A namespace as a container runtime makes one for a pod: empty, so its
    /// first device is ifindex 2.
    pub fn pod(tag: &str) -> Self {
        Self::fresh(tag)
    }

    /// A namespace with no name anywhere, as a container runtime's pod has:
    /// `unshare -n` runs a process in a new one, which keeps it alive; `-n`
    /// reaches it as `pid:PID` (or by [`TestNs::path`]).
    pub fn unnamed() -> Self {
        let holder = Command::new("unshare").args(["-n", "sleep", "100000"]).spawn().expect("unshare runs");
        let pid = holder.id();
        let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
        // unshare switches after it starts: wait until the process is elsewhere.
        let ino = |p: &Path| std::fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).ok();
        let own = ino(Path::new("/proc/self/ns/net"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while ino(&path) == own {
            assert!(std::time::Instant::now() < deadline, "unshare -n did not leave this namespace");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let ns = Self { name: format!("pid:{pid}"), path, holder: Some(holder) };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's inode, which names an unnamed namespace in the pin
    /// layout (`netns-<inode>`).
    pub fn inode(&self) -> u64 {
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&self.path).expect("the namespace file"))
    }

    fn fresh(tag: &str) -> Self {
        let name = format!("nkt-{tag}-{}-{}", std::process::id(), unique());
        netkit::os::netns::create(&name).expect("creating a test network namespace");
        let path = PathBuf::from(format!("/run/netns/{name}"));
        let ns = Self { name, path, holder: None };
        ns.ip(&["link", "set", "lo", "up"]);
        // IPv6 addresses usable at once (no duplicate address detection).
        ns.sysctl("net/ipv6/conf/all/accept_dad", "0");
        ns.sysctl("net/ipv6/conf/default/accept_dad", "0");
        ns
    }

    /// Creates a filler pair and deletes it again. The kernel hands out
    /// ifindexes cyclically per namespace (since Linux 6.6) and does not
    /// reuse freed ones at once, so the next device made here gets an
    /// ifindex two higher, and no filler is left to show up in device lists.
    /// veth where the kernel has it (the host, and the VM once its veth
    /// module is loaded), else a netkit pair.
    pub fn advance(&self) {
        let veth = self.ip(&["link", "add", "nkfill0", "type", "veth", "peer", "name", "nkfill1"]);
        if veth.status.success() {
            self.ip_ok(&["link", "del", "nkfill0"]);
        } else {
            self.ok(&["device", "add", "nkfill0", "--peer", "nkfill1"]);
            self.ok(&["device", "del", "nkfill0"]);
        }
    }

    /// The ifindex of `dev` here, read by the witness (`ip -o link`), not by
    /// the tool.
    pub fn ifindex_of(&self, dev: &str) -> u32 {
        let o = self.ip(&["-o", "link", "show", "dev", dev]);
        assert!(o.status.success(), "ip link show {dev} in {}: {}", self.name, stderr(&o));
        let text = stdout(&o);
        text.split(':').next().and_then(|n| n.trim().parse().ok()).unwrap_or_else(|| panic!("no ifindex in {text:?}"))
    }

    /// `netkit -n NS ARGS`, expecting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        ok(&self.args(args))
    }

    /// `netkit -n NS ARGS`, expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        fails(&self.args(args))
    }

    pub fn run(&self, args: &[&str]) -> Output {
        run(&self.args(args))
    }

    /// `netkit -n NS -j ARGS` parsed as JSON.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["-j"];
        a.extend_from_slice(args);
        let text = self.ok(&a);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("netkit {a:?} printed no JSON ({e}):\n{text}"))
    }

    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec!["-n", self.name.as_str()];
        a.extend_from_slice(args);
        a
    }

    /// Runs `ip ARGS` inside the namespace: iproute2 (the host's, or the one
    /// the VM carries instead of busybox's).
    pub fn ip(&self, args: &[&str]) -> Output {
        self.exec(&ip_bin(), args)
    }

    /// Runs `ip ARGS` inside the namespace and panics unless it succeeds.
    pub fn ip_ok(&self, args: &[&str]) {
        let o = self.ip(args);
        assert!(o.status.success(), "ip {args:?} in {} failed: {}", self.name, stderr(&o));
    }

    /// iproute2's view of `dev` here (`ip -d -j link show dev DEV`), the
    /// tests' independent witness of device facts. In the VM this is the full
    /// iproute2 the guest carries (`NETKIT_TEST_IP`; busybox's `ip` knows no
    /// netkit), on the host the host's.
    pub fn ip_link(&self, dev: &str) -> serde_json::Value {
        let ip = ip_bin();
        let o = self.exec(&ip, &["-d", "-j", "link", "show", "dev", dev]);
        assert!(o.status.success(), "{ip} -d -j link show dev {dev} in {}: {}", self.name, stderr(&o));
        let text = stdout(&o);
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{ip} printed no JSON ({e}):\n{text}"));
        v[0].clone()
    }

    /// Runs any program inside the namespace.
    pub fn exec(&self, program: &str, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net={}", self.path.display()))
            .arg(program)
            .args(args)
            .output()
            .expect("nsenter runs")
    }

    /// Runs `f` on a thread inside the namespace (sockets made there stay there).
    pub fn within<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = self.path.clone();
        std::thread::spawn(move || {
            netkit::os::netns::enter(&netkit::os::netns::NetnsRef::Path(path)).expect("entering the test namespace");
            f()
        })
        .join()
        .expect("namespace thread panicked")
    }

    /// Writes /proc/sys/PATH inside the namespace (net sysctls are per namespace).
    pub fn sysctl(&self, path: &str, value: &str) {
        let file = format!("/proc/sys/{path}");
        let value = value.to_string();
        self.within(move || {
            // Absent when the kernel lacks the feature (e.g. IPv6 off): fine.
            let _ = std::fs::write(&file, value);
        });
    }

    /// No IPv6 on devices made from now on, and none on existing ones: no
    /// router solicitations or MLD reports muddle packet counts.
    pub fn disable_ipv6(&self) {
        self.sysctl("net/ipv6/conf/all/disable_ipv6", "1");
        self.sysctl("net/ipv6/conf/default/disable_ipv6", "1");
    }

    /// A sysfs mounted from inside this namespace, so /sys/class/net shows its devices.
    pub fn sysfs(&self) -> Sysfs {
        let dir = std::env::temp_dir().join(format!("netkit-sysfs-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.clone();
        self.within(move || {
            let status = Command::new("mount").args(["-t", "sysfs", "sysfs"]).arg(&target).status().unwrap();
            assert!(status.success(), "mounting sysfs failed");
        });
        Sysfs { dir }
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        match &mut self.holder {
            Some(holder) => {
                let _ = holder.kill();
                let _ = holder.wait();
            }
            None => {
                let _ = netkit::os::netns::delete(&self.name);
            }
        }
    }
}

pub struct Sysfs {
    dir: PathBuf,
}

impl Sysfs {
    /// /sys/class/net/DEV/FILE, trimmed.
    pub fn read(&self, dev: &str, file: &str) -> String {
        let p = self.dir.join("class/net").join(dev).join(file);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display())).trim().to_string()
    }

    pub fn has(&self, dev: &str) -> bool {
        self.dir.join("class/net").join(dev).exists()
    }

    /// The device's flags as a number (IFF_*).
    pub fn flags(&self, dev: &str) -> u32 {
        u32::from_str_radix(self.read(dev, "flags").trim_start_matches("0x"), 16).unwrap()
    }
}

impl Drop for Sysfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

pub const IFF_NOARP: u32 = 0x80;

/// Sends a few UDP datagrams from `from` to `to_ip` (an address inside `to`)
/// and says whether any arrived.
pub fn udp_delivers(from: &TestNs, to: &TestNs, to_ip: &str) -> bool {
    use std::net::UdpSocket;
    let bind = format!("{to_ip}:0");
    let rx = to.within(move || UdpSocket::bind(bind).expect("binding the receiver"));
    rx.set_read_timeout(Some(std::time::Duration::from_millis(1500))).unwrap();
    let dst = rx.local_addr().unwrap();
    let tx = from.within(|| UdpSocket::bind("0.0.0.0:0").expect("binding the sender"));
    for _ in 0..3 {
        let _ = tx.send_to(b"netkit", dst);
        let mut buf = [0u8; 16];
        if let Ok((n, _)) = rx.recv_from(&mut buf) {
            return &buf[..n] == b"netkit";
        }
    }
    false
}

/// Sends `n` UDP datagrams ("netkit", 6 bytes) from `from` to `to_ip:port`
/// (an address inside `to`) and returns how many arrived.
pub fn send_udp(from: &TestNs, to: &TestNs, to_ip: &str, port: u16, n: usize) -> usize {
    use std::net::{SocketAddr, UdpSocket};
    let addr: SocketAddr = match to_ip.parse::<std::net::IpAddr>().expect("an IP") {
        std::net::IpAddr::V4(a) => SocketAddr::from((a, port)),
        std::net::IpAddr::V6(a) => SocketAddr::from((a, port)),
    };
    let rx = to.within(move || UdpSocket::bind(addr).expect("binding the receiver"));
    rx.set_read_timeout(Some(std::time::Duration::from_millis(1500))).unwrap();
    let any: SocketAddr = if addr.is_ipv4() { "0.0.0.0:0".parse().unwrap() } else { "[::]:0".parse().unwrap() };
    let tx = from.within(move || UdpSocket::bind(any).expect("binding the sender"));
    for _ in 0..n {
        tx.send_to(b"netkit", addr).expect("sending");
    }
    let mut got = 0;
    let mut buf = [0u8; 16];
    while got < n && rx.recv_from(&mut buf).is_ok() {
        got += 1;
    }
    got
}

/// Skips the calling test unless the kernel has netkit.
#[macro_export]
macro_rules! require_netkit {
    () => {
        $crate::require_root!();
        if !netkit::os::probe::probe(netkit::os::probe::Feature::Netkit).is_supported() {
            $crate::common::skip("this kernel has no netkit (needs Linux >= 6.7 built with CONFIG_NETKIT)");
            return;
        }
    };
}

/// The kernel's /sys/kernel/rcu_expedited for a test: set to 0 while the
/// guard lives and put back as found when it goes, passed or failed.
pub struct RcuKnob(String);

impl RcuKnob {
    pub fn zero() -> Self {
        let found = Self::read();
        std::fs::write(netkit::os::rcu::KNOB, "0").unwrap();
        Self(found)
    }

    pub fn read() -> String {
        std::fs::read_to_string(netkit::os::rcu::KNOB).unwrap().trim().to_string()
    }
}

impl Drop for RcuKnob {
    fn drop(&mut self) {
        let _ = std::fs::write(netkit::os::rcu::KNOB, &self.0);
    }
}
