//! The links this tool pinned, across namespaces: `link list`, `link show`
//! and `link prune` (defunct ones). Reads bpffs and link info only.

use super::*;

/// Where a pinned link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    /// On its hook.
    Attached,
    /// Its device is gone or it was detached; only the pin holds it.
    Defunct,
    /// The pin could not be opened or read.
    Unreadable,
}

/// A link this tool pinned, as `link list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LinkView {
    /// The pin's name.
    pub name: String,
    /// The network namespace the link was attached in, as the pin layout names it.
    pub netns: String,
    /// The device the link was attached to (for a peer hook, the pair's primary).
    pub device: String,
    /// The hook the link was attached to.
    pub hook: Hook,
    /// The pin's path on the bpffs.
    pub pin: String,
    /// The link's id, when the pin could be read.
    pub link_id: Option<u32>,
    /// The program the link runs, when the pin could be read.
    pub prog_id: Option<u32>,
    /// That program's name.
    pub prog_name: Option<String>,
    /// The ifindex of the device the kernel keeps in the link, 0 once
    /// defunct. For a link on a netkit peer hook that is the peer's ifindex,
    /// counted in the peer's namespace; `device` and `hook` name the pair's
    /// primary and the hook, as the link was attached.
    pub(crate) ifindex: Option<u32>,
    /// Whether the link is attached, defunct, or could not be read.
    pub state: LinkState,
    /// Why the pin could not be read (state `unreadable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Hooks<'_> {
    /// How many links this tool pinned in the current namespace are defunct.
    pub fn defunct_here(&self) -> usize {
        let here = crate::os::netns::current_name();
        self.links().iter().filter(|l| l.netns == here && l.state == LinkState::Defunct).count()
    }

    /// `netkit link list`: every link this tool pinned, and whether it is defunct.
    pub fn links(&self) -> Vec<LinkView> {
        Layout::unchecked(&self.bpffs)
            .links()
            .into_iter()
            .map(|l| {
                let opened = pins::open_link(&l.path);
                let (link_id, prog_id, ifindex, state, error) = match &opened {
                    // A released link keeps no device: ifindex 0, whatever
                    // its hook (see check_link_on for what a live one reports).
                    Ok((_, info)) => (
                        Some(info.id),
                        Some(info.prog_id),
                        Some(info.ifindex),
                        if info.ifindex == 0 { LinkState::Defunct } else { LinkState::Attached },
                        None,
                    ),
                    Err(e) => (None, None, None, LinkState::Unreadable, Some(e.io_error.to_string())),
                };
                LinkView {
                    name: l.name,
                    netns: l.netns,
                    device: l.device,
                    hook: l.hook,
                    pin: l.path.display().to_string(),
                    link_id,
                    prog_id,
                    prog_name: prog_id.map(prog_name),
                    ifindex,
                    state,
                    error,
                }
            })
            .collect()
    }

    /// `netkit link show REF`: one pinned link (link:ID, pin:PATH or a pin name).
    pub fn link(&self, target: &RefSpec) -> Result<LinkView, AttachError> {
        let all = self.links();
        let matches: Vec<LinkView> = match target {
            RefSpec::Link(id) => all.into_iter().filter(|l| l.link_id == Some(*id)).collect(),
            RefSpec::Pin(p) => all.into_iter().filter(|l| std::path::Path::new(&l.pin) == p).collect(),
            RefSpec::Name(n) => all.into_iter().filter(|l| &l.name == n).collect(),
            RefSpec::Prog(_) => {
                return Err(AttachError::Invalid(
                    "link show takes link:ID, pin:PATH or the name of a pinned link".into(),
                ));
            }
        };
        match matches.len() {
            1 => Ok(matches.into_iter().next().expect("one")),
            0 => {
                Err(AttachError::Invalid(format!("no link pinned by netkit matches {target} (see `netkit link list`)")))
            }
            _ => Err(AttachError::Invalid(format!(
                "{target} matches several pinned links ({}); use pin:PATH or link:ID",
                matches.iter().map(|l| l.pin.clone()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// `netkit link prune`: unpins the links whose device is gone or that were
    /// detached; returns what was removed.
    pub fn prune(&self) -> Result<Vec<LinkView>, AttachError> {
        let layout = Layout::unchecked(&self.bpffs);
        let mut pruned = Vec::new();
        for l in self.links() {
            if l.state == LinkState::Defunct {
                layout.unpin(&PathBuf::from(&l.pin))?;
                pruned.push(l);
            }
        }
        Ok(pruned)
    }
}
