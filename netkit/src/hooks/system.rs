//! Every tcx and netkit link on the system, not only this tool's: `link list
//! --all` and `link prune --all`. Each link is placed by finding it on a
//! hook's chain in one of the namespaces this tool can reach, and shown with
//! what holds it (pins, processes) and whether this tool manages it.

use super::*;
use std::collections::HashSet;

use crate::netlink::read::{Stats, Which};

/// A tcx or netkit link anywhere on the system.
#[derive(Debug, Clone, Serialize)]
pub struct SystemLinkView {
    /// The link's id.
    pub link_id: u32,
    /// `tcx` or `netkit`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The hook it was attached to.
    pub hook: Option<Hook>,
    /// The device whose chain holds it (for netkit hooks, the pair's
    /// primary), when one of the reachable namespaces has it.
    pub device: Option<String>,
    /// That device's namespace, the way `-n` takes it.
    pub netns: Option<String>,
    /// The ifindex the kernel keeps in the link (0: defunct; for a netkit
    /// peer link, the peer's, in the peer's namespace).
    pub ifindex: u32,
    /// The program it runs.
    pub prog_id: u32,
    /// That program's name.
    pub prog_name: String,
    /// Attached or defunct.
    pub state: LinkState,
    /// Whether this tool pinned it (and so manages it).
    pub managed: bool,
    /// This tool's pin of it, if managed.
    pub pin: Option<String>,
    /// Everything holding it: pins anywhere, processes with an fd to it.
    pub held_by: Vec<owners::Holder>,
}

impl SystemLinkView {
    /// Whether a process holds it (then only that process can release it).
    pub fn held_by_a_process(&self) -> bool {
        self.held_by.iter().any(|h| matches!(h, owners::Holder::Process { .. }))
    }

    /// Its holders in words, `;`-separated.
    pub fn holders_text(&self) -> String {
        self.held_by.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    }
}

/// What `link prune --all` did and left.
#[derive(Debug, Clone, Serialize)]
pub struct PruneAll {
    /// Defunct links whose pins were removed.
    pub pruned: Vec<SystemLinkView>,
    /// Defunct links left alone, with what still holds them.
    pub left: Vec<SystemLinkView>,
}

impl Hooks<'_> {
    /// `netkit link list --all`: every tcx and netkit link on the system.
    pub async fn system_links(&self) -> Vec<SystemLinkView> {
        let holders = owners::Holders::scan();
        let mut found = Vec::new();
        let mut id = 0;
        while let Some(next) = bpf::next_link_id(id) {
            id = next;
            // A pinned link was read by the walk of the pins; another is
            // opened, and skipped when gone since or not ours to read.
            let li = match holders.pinned_info(id) {
                Some(li) => li,
                None => {
                    let Ok(fd) = bpf::link_fd_by_id(id) else { continue };
                    let Ok(li) = bpf::link_info(fd.as_fd()) else { continue };
                    li
                }
            };
            let kind = match li.link_type {
                bpf::BPF_LINK_TYPE_TCX => "tcx",
                bpf::BPF_LINK_TYPE_NETKIT => "netkit",
                _ => continue,
            };
            found.push((li, kind));
        }
        // A defunct link is on no chain; one attached names its hook and
        // its device's ifindex (in a namespace its info does not say).
        let placed = placements(
            found
                .iter()
                .filter(|(li, _)| li.ifindex != 0)
                .filter_map(|(li, _)| Some((li.id, (li.ifindex, Hook::from_attach_type(li.attach_type)?))))
                .collect(),
        );
        // This tool's pins, by the walk of every bpffs the holders made;
        // one not found there (a bpffs not mounted as such) is opened.
        let pinned = holders.pins();
        let ours: HashMap<u32, pins::PinnedLink> = Layout::unchecked(&self.bpffs)
            .links()
            .into_iter()
            .filter_map(|l| {
                let id = match pinned.get(&l.path) {
                    Some(id) => *id,
                    None => pins::open_link(&l.path).ok()?.1.id,
                };
                Some((id, l))
            })
            .collect();
        let mut out = Vec::new();
        // Links of one program share its name: read once.
        let mut names: HashMap<u32, String> = HashMap::new();
        for (li, kind) in found {
            let place = placed.get(&li.id);
            let pin = ours.get(&li.id);
            out.push(SystemLinkView {
                link_id: li.id,
                kind,
                hook: Hook::from_attach_type(li.attach_type),
                device: place.map(|p| p.1.clone()),
                netns: place.map(|p| p.0.clone()),
                ifindex: li.ifindex,
                prog_id: li.prog_id,
                prog_name: names.entry(li.prog_id).or_insert_with(|| prog_name(li.prog_id)).clone(),
                state: if li.ifindex == 0 { LinkState::Defunct } else { LinkState::Attached },
                managed: pin.is_some(),
                pin: pin.map(|p| p.path.display().to_string()),
                held_by: holders.of(li.id),
            });
        }
        out.sort_by_key(|l| l.link_id);
        out
    }

    /// `netkit link prune --all`: unpins this tool's defunct links and, with
    /// `force`, the pins others made of defunct links; says what it leaves
    /// (links held by a process cannot be pruned: the process must close them).
    pub async fn prune_all(&self, force: bool) -> Result<PruneAll, AttachError> {
        let layout = Layout::unchecked(&self.bpffs);
        let (mut pruned, mut left) = (Vec::new(), Vec::new());
        for l in self.system_links().await.into_iter().filter(|l| l.state == LinkState::Defunct) {
            let pins: Vec<PathBuf> = l
                .held_by
                .iter()
                .filter_map(|h| match h {
                    owners::Holder::Pin(p) => Some(p.clone()),
                    owners::Holder::Process { .. } => None,
                })
                .collect();
            let processes = l.held_by_a_process();
            match (&l.pin, force) {
                (Some(ours), _) if !force => {
                    layout.unpin(&PathBuf::from(ours))?;
                    pruned.push(l);
                }
                (_, true) if !pins.is_empty() => {
                    for p in &pins {
                        std::fs::remove_file(p).map_err(|cause| PinError::Io {
                            what: "removing",
                            path: p.display().to_string(),
                            cause,
                        })?;
                    }
                    if processes { left.push(l) } else { pruned.push(l) }
                }
                _ => left.push(l),
            }
        }
        Ok(PruneAll { pruned, left })
    }
}

/// Where each link of `wanted` (by id: its device's ifindex and its hook)
/// sits: (namespace, device, hook) by link id, from the chains of the hooks
/// the links name, on the devices of those ifindexes in the namespaces this
/// tool can reach, this one first, until every link is found. The thread
/// enters each namespace once: BPF_PROG_QUERY reads ifindexes in the
/// caller's namespace, and a plain socket opened there dumps its devices.
fn placements(mut wanted: HashMap<u32, (u32, Hook)>) -> HashMap<u32, (String, String, Hook)> {
    let mut out = HashMap::new();
    let here = std::iter::once((netns::current_name(), None));
    // Walked only when this namespace does not place every link.
    let others = std::iter::once(()).flat_map(|()| netns::others()).map(|ns| (ns.name.clone(), Some(ns)));
    for (name, ns) in here.chain(others) {
        if wanted.is_empty() {
            break;
        }
        let fd = match ns.map(|ns| ns.open()) {
            Some(Ok(fd)) => Some(fd),
            Some(Err(_)) => continue,
            None => None,
        };
        let _visit = match &fd {
            Some(fd) => match netns::Visit::fd(fd) {
                Ok(v) => Some(v),
                Err(_) => continue,
            },
            None => None,
        };
        let Ok(devices) = crate::netlink::read::LinkSocket::open()
            .map_err(drop)
            .and_then(|s| s.get(Which::All, Stats::Without, &|| "listing devices".into()).map_err(drop))
        else {
            continue;
        };
        // The hooks still to read, by ifindex (the same ifindex may name
        // other devices in other namespaces: a link counts where its chain
        // holds it).
        let mut hooks: HashMap<u32, HashSet<Hook>> = HashMap::new();
        for &(ifindex, hook) in wanted.values() {
            hooks.entry(ifindex).or_default().insert(hook);
        }
        for dev in devices {
            for &hook in hooks.get(&dev.index).into_iter().flatten() {
                let Ok(chain) = HookRef::new(dev.index, hook).query() else { continue };
                for slot in chain.slots {
                    if let Some(link) = slot.link_id
                        && wanted.remove(&link).is_some()
                    {
                        out.insert(link, (name.clone(), dev.name.clone(), hook));
                    }
                }
            }
        }
    }
    out
}
