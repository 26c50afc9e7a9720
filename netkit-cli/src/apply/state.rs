//! Ownership: what apply created, recorded so that it outlives the process.
//!
//! The record is a JSON file, by default `/run/netkit/apply/<netns>.json`
//! (one per network namespace, in /run because the objects it names, devices
//! and pinned links, do not survive a reboot either). It is replaced
//! atomically (write, fsync, rename). Before a step runs, the record already
//! names what the step will make, marked as not confirmed; a crash between
//! the two leaves an object the next apply recognises as its own (by its
//! name and pin path) and brings to the spec, instead of an object nobody
//! owns.

use std::{
    collections::BTreeMap,
    io::Write as _,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

/// The default directory of ownership records.
pub const STATE_DIR: &str = "/run/netkit/apply";

/// Why the ownership record could not be read or written.
#[derive(Debug, thiserror::Error)]
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

/// Everything apply owns in one namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ownership {
    /// Pairs, by primary name.
    #[serde(default)]
    pub pairs: BTreeMap<String, OwnedPair>,
    /// Links, by where they are.
    #[serde(default, with = "link_map")]
    pub links: BTreeMap<LinkKey, OwnedLink>,
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
        std::fs::write(&rec.path, "{").unwrap();
        assert!(rec.load().unwrap_err().to_string().contains("move it aside"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
