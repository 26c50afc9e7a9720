//! Ownership: what apply created, recorded so that it outlives the process.
//!
//! The record is a JSON file, by default `/run/netkit/apply/<netns>.json`
//! (one per network namespace, in /run because the objects it names, devices
//! and pinned links, do not survive a reboot either). It is replaced
//! atomically (write, fsync, rename).
//!
//! What it holds, and why: the *claims* (the pair names and the link names,
//! by device and hook, that apply made), which nothing in the kernel can
//! tell apart from what `netkit attach --pin` made under the same layout;
//! and a *cache* of what the kernel and the bpffs can say without it (the
//! pair's ifindex, the link and program ids) plus what they cannot (the
//! fingerprint of what a program was made from, and the spec's words for
//! `export`). A link is apply's when the pin at apply's path for a claimed
//! name holds it, whatever id the cache last saw: the pin and the kernel's
//! link info are the truth, the ids only save work.
//!
//! The claims are written before the first step of a run (pairs and links
//! it will make, with no ids yet) and the outcome after the last, so a crash
//! at any point leaves only objects some claim names. Writing after every
//! step would buy only the ids of the steps already done (the next run reads
//! them off the pins again) at the cost of rewriting the whole record per
//! step, quadratic in a node's links.
//!
//! It also holds, per hook, the *proof* a run left of the chain it made:
//! the hook's mprog revision and slots as the kernel reported them once the
//! chain was as the spec said, and a digest of what the spec said. A later
//! run whose spec says the same for that hook and whose one query of the
//! hook answers the same revision and slots plans nothing for it, without
//! opening its pins or reading its programs' maps: what a one-pod change
//! costs then does not grow with the node. A proof is dropped before its
//! hook is changed, so a crash leaves none that could be wrong.
//!
//! Writers take [`Record::lock`] first, so runs on one namespace never
//! interleave.

use std::{
    collections::BTreeMap,
    io::{Read as _, Seek as _, Write as _},
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use serde::{Deserialize, Serialize};

/// The default directory of ownership records.
pub const STATE_DIR: &str = "/run/netkit/apply";

/// Why the ownership record could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Reading or writing the file failed.
    #[error("{what} the ownership record {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: String,
        /// What the system call answered.
        #[source]
        cause: std::io::Error,
    },
    /// Another writer holds the record's lock, and waiting for it ran out.
    #[error(
        "another writer is changing the objects of {path}: {holder}; gave up after {waited} s: run again when it is done (apply --wait SECONDS waits longer)"
    )]
    Busy {
        /// The record.
        path: String,
        /// Who holds the lock, as it wrote itself into the lock file.
        holder: String,
        /// Seconds waited.
        waited: u64,
    },
    /// The file is not a record this tool wrote.
    #[error(
        "the ownership record {path} is unreadable ({why}); move it aside to start over (apply then manages nothing it made before)"
    )]
    Corrupt {
        /// The file.
        path: String,
        /// What the parser said.
        why: String,
    },
}

/// A pair apply created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedPair {
    /// The primary's ifindex once created; None while the creation is not
    /// confirmed.
    pub ifindex: Option<u32>,
}

/// A link apply attached and pinned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedLink {
    /// The link id once attached; None while not confirmed.
    pub link_id: Option<u32>,
    /// The program the link runs, as apply last set it.
    pub prog_id: Option<u32>,
    /// What that program was made from (object, function, settings); None
    /// when unknown, which makes the next apply replace it.
    pub fingerprint: Option<String>,
    /// The program as the spec wrote it (for `export`).
    pub program: String,
    /// Its settings as the spec wrote them (for `export`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<String>,
}

impl OwnedLink {
    /// Whether the hook `proof` shows holds this link, running the program
    /// recorded for it.
    pub(crate) fn on(&self, proof: &HookProof) -> bool {
        self.link_id.is_some_and(|id| proof.slots.iter().any(|&(prog, link)| link == id && Some(prog) == self.prog_id))
    }
}

/// Where a managed link lives: device, hook, pin name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LinkKey {
    /// The device.
    pub device: String,
    /// The hook's name.
    pub hook: String,
    /// The pin name.
    pub name: String,
}

impl std::fmt::Display for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.device, self.hook, self.name)
    }
}

/// A hook as the last run left it, once its chain was as the spec said.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookProof {
    /// The device's ifindex.
    pub ifindex: u32,
    /// The hook's mprog revision.
    pub revision: u64,
    /// Its slots in order: (program id, link id or 0).
    pub slots: Vec<(u32, u32)>,
    /// What the spec said of the chain (programs, what they were made from,
    /// settings, rules, redirect entries and their devices' ifindexes).
    pub digest: String,
}

impl HookProof {
    /// The proof of a chain as queried, for a spec whose digest is `digest`.
    pub(crate) fn of(ifindex: u32, chain: &crate::mprog::Chain, digest: String) -> Self {
        Self {
            ifindex,
            revision: chain.revision,
            slots: chain.slots.iter().map(|s| (s.prog_id, s.link_id.unwrap_or(0))).collect(),
            digest,
        }
    }
}

/// Everything apply owns in one namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ownership {
    /// Pairs, by primary name.
    #[serde(default)]
    pub pairs: BTreeMap<String, OwnedPair>,
    /// Links, by where they are.
    #[serde(default, with = "link_map")]
    pub links: BTreeMap<LinkKey, OwnedLink>,
    /// Proofs, by "DEVICE HOOK" (see the module's words).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hooks: BTreeMap<String, HookProof>,
}

/// The key of a hook's proof.
pub(crate) fn hook_key(device: &str, hook: &str) -> String {
    format!("{device} {hook}")
}

/// JSON maps need string keys: links are stored as a list.
mod link_map {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Row {
        #[serde(flatten)]
        key: LinkKey,
        #[serde(flatten)]
        link: OwnedLink,
    }

    pub fn serialize<S: serde::Serializer>(m: &BTreeMap<LinkKey, OwnedLink>, s: S) -> Result<S::Ok, S::Error> {
        let rows: Vec<Row> = m.iter().map(|(k, v)| Row { key: k.clone(), link: v.clone() }).collect();
        rows.serialize(s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<LinkKey, OwnedLink>, D::Error> {
        let rows = Vec::<Row>::deserialize(d)?;
        Ok(rows.into_iter().map(|r| (r.key, r.link)).collect())
    }
}

/// Held while one writer plans and applies against a record: an exclusive
/// flock(2) on `<record>.lock`, which the kernel releases when the process
/// ends however it ends, so a killed apply never leaves it held.
#[derive(Debug)]
pub struct RecordLock {
    _file: std::fs::File,
}

/// How long a writer waits for another to release the record's lock.
#[derive(Debug, Clone, Copy)]
pub enum Wait<'a> {
    /// At most this long.
    For(Duration),
    /// Until the flag is set (an agent's SIGTERM), however long that is.
    UntilStopped(&'a std::sync::atomic::AtomicBool),
}

impl Wait<'_> {
    fn over(&self, waited: Duration) -> bool {
        match self {
            Self::For(d) => waited >= *d,
            Self::UntilStopped(stop) => stop.load(std::sync::atomic::Ordering::SeqCst),
        }
    }
}

/// The record file of one namespace.
#[derive(Debug, Clone)]
pub struct Record {
    /// The file.
    pub path: PathBuf,
}

impl Record {
    /// The default record for the namespace named `netns` in the pin layout.
    pub fn for_netns(netns: &str) -> Self {
        Self { path: Path::new(STATE_DIR).join(format!("{netns}.json")) }
    }

    /// What the record says (nothing owned when there is no file).
    pub fn load(&self) -> Result<Ownership, StateError> {
        let shown = self.path.display().to_string();
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt { path: shown, why: e.to_string() })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ownership::default()),
            Err(cause) => Err(StateError::Io { what: "reading", path: shown, cause }),
        }
    }

    /// The lock file beside the record.
    pub fn lock_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        self.path.with_file_name(name)
    }

    /// Takes the record's lock: at once when it is free, else waiting as
    /// `wait` says, calling `waiting` once with who holds it. Who holds it is
    /// written into the lock file.
    pub fn lock(&self, wait: Wait<'_>, mut waiting: impl FnMut(&str)) -> Result<RecordLock, StateError> {
        let path = self.lock_path();
        let shown = self.path.display().to_string();
        let io = |what| {
            let shown = path.display().to_string();
            move |cause| StateError::Io { what, path: shown, cause }
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io("creating the directory of"))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("opening"))?;
        let start = Instant::now();
        let mut told = false;
        loop {
            // SAFETY: flock on a descriptor this function owns.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io("locking")(e));
            }
            let holder = holder_of(&mut file);
            if wait.over(start.elapsed()) {
                return Err(StateError::Busy { path: shown, holder, waited: start.elapsed().as_secs() });
            }
            if !told {
                waiting(&holder);
                told = true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let cmd = std::fs::read("/proc/self/cmdline")
            .map(|b| String::from_utf8_lossy(&b).split('\0').filter(|a| !a.is_empty()).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        let me = format!("{}\t{now}\t{cmd}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(me.as_bytes()))
            .map_err(io("writing"))?;
        Ok(RecordLock { _file: file })
    }

    /// Replaces the record atomically.
    pub fn save(&self, owned: &Ownership) -> Result<(), StateError> {
        let shown = self.path.display().to_string();
        let io = |what| {
            let shown = shown.clone();
            move |cause| StateError::Io { what, path: shown, cause }
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io("creating the directory of"))?;
        }
        let tmp = self.path.with_extension(format!("tmp.{}", std::process::id()));
        let text = serde_json::to_vec_pretty(owned).expect("the record serializes");
        let mut f = std::fs::File::create(&tmp).map_err(io("writing"))?;
        f.write_all(&text).and_then(|()| f.sync_all()).map_err(io("writing"))?;
        std::fs::rename(&tmp, &self.path).map_err(io("replacing"))
    }
}

/// Who holds a lock, from what it wrote into the file: `pid N (COMMAND),
/// for S s`.
fn holder_of(file: &mut std::fs::File) -> String {
    let mut text = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
    let mut it = text.trim_end().splitn(3, '\t');
    let (Some(pid), Some(since), cmd) = (it.next(), it.next().and_then(|s| s.parse::<u64>().ok()), it.next()) else {
        return "a process that has not said who it is yet".into();
    };
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format!("pid {pid} ({}), for {} s", cmd.unwrap_or("?"), now.saturating_sub(since))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_a_missing_one_owns_nothing() {
        let dir = std::env::temp_dir().join(format!("netkit-state-{}", std::process::id()));
        let rec = Record { path: dir.join("x.json") };
        assert_eq!(rec.load().unwrap(), Ownership::default());
        let mut o = Ownership::default();
        o.pairs.insert("nk0".into(), OwnedPair { ifindex: Some(4) });
        o.links.insert(
            LinkKey { device: "nk0".into(), hook: "peer".into(), name: "fw".into() },
            OwnedLink { link_id: Some(9), prog_id: Some(20), fingerprint: None, program: "pass".into(), set: vec![] },
        );
        rec.save(&o).unwrap();
        assert_eq!(rec.load().unwrap(), o);
        // One writer at a time: a second lock waits, then gives up naming
        // the holder.
        let held = rec.lock(Wait::For(Duration::ZERO), |_| {}).unwrap();
        let mut told = None;
        let e = rec.lock(Wait::For(Duration::from_millis(120)), |h| told = Some(h.to_string())).unwrap_err();
        let pid = format!("pid {}", std::process::id());
        assert!(told.is_some_and(|h| h.contains(&pid)), "the waiter is told who holds it");
        assert!(matches!(&e, StateError::Busy { holder, .. } if holder.contains(&pid)), "{e}");
        drop(held);
        let stop = std::sync::atomic::AtomicBool::new(true);
        let held = rec.lock(Wait::UntilStopped(&stop), |_| panic!("free again")).unwrap();
        assert!(rec.lock(Wait::UntilStopped(&stop), |_| {}).is_err(), "a stopped waiter gives up");
        drop(held);
        std::fs::write(&rec.path, "{").unwrap();
        assert!(rec.load().unwrap_err().to_string().contains("move it aside"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
