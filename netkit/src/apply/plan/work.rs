//! What a plan holds: the steps in words for people and JSON, and the work
//! in typed form for the executor.

use super::*;

/// What the planner may do.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// Remove managed objects the spec no longer has.
    pub prune: bool,
    /// Replace pairs whose fixed attributes differ from the spec.
    pub recreate: bool,
    /// Take over pairs and pinned links that exist exactly as the spec
    /// says, without touching them; refuse any that differ.
    pub adopt: bool,
    /// Read every hook's programs and their maps (rules, redirect entries),
    /// also where the last run's proof shows the hook as it left it (see
    /// [`crate::apply::state`]): finds what another tool wrote into a
    /// managed program's maps.
    pub full: bool,
}

/// The kind of a step, as `diff` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A pair is created.
    Create,
    /// A pair's live attributes change.
    Change,
    /// A pair is deleted and created again (`--recreate`).
    Recreate,
    /// A program is attached (a new link).
    Attach,
    /// A link's program is replaced in place.
    Update,
    /// A program moves to another place in its chain (a new link).
    Move,
    /// A firewall's rules or a redirect table change live.
    Edit,
    /// A link is detached and unpinned.
    Detach,
    /// A pair is deleted (`--prune`).
    Delete,
    /// A pair or link that exists as the spec says is taken over as it is
    /// (`--adopt`).
    Adopt,
}

impl Action {
    /// The action's word, as `diff` shows it and the JSON says it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Change => "change",
            Self::Recreate => "recreate",
            Self::Attach => "attach",
            Self::Update => "update",
            Self::Move => "move",
            Self::Edit => "edit",
            Self::Detach => "detach",
            Self::Delete => "delete",
            Self::Adopt => "adopt",
        }
    }
}

/// One step of a plan, for people and for JSON.
#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    /// What happens.
    pub action: Action,
    /// To what: `pair nk0`, `nk0 peer fw`.
    pub object: String,
    /// Why, or what changes.
    pub detail: String,
    /// The pair's ifindex: the one it has (a plan's change, recreate or
    /// delete), or the one it got (apply's report of a create or recreate).
    pub ifindex: Option<u32>,
    /// The link the step changes or detaches (a plan), or made, changed or
    /// detached (apply's report).
    pub link_id: Option<u32>,
    /// In apply's report: the program the link runs after the step, or
    /// whose rules or entries it wrote.
    pub prog_id: Option<u32>,
}

impl StepView {
    pub(crate) fn new(action: Action, object: String, detail: String) -> Self {
        Self { action, object, detail, ifindex: None, link_id: None, prog_id: None }
    }

    pub(crate) fn ifindex(self, ifindex: u32) -> Self {
        Self { ifindex: Some(ifindex), ..self }
    }

    pub(crate) fn with_link(self, link_id: u32) -> Self {
        Self { link_id: Some(link_id), ..self }
    }

    pub(crate) fn with_prog(self, prog_id: u32) -> Self {
        Self { prog_id: Some(prog_id), ..self }
    }
}

/// A program on a hook apply does not own, shown so that the user knows it
/// stays.
#[derive(Debug, Clone, Serialize)]
pub struct ForeignView {
    /// The device.
    pub device: String,
    /// The hook.
    pub hook: Hook,
    /// Its 1-based position now.
    pub position: usize,
    /// The program.
    pub prog_id: u32,
    /// The owning link; None for a plain attachment.
    pub link_id: Option<u32>,
}

/// A plan: the steps in the order they run, and what stays untouched.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The steps, in order.
    pub steps: Vec<StepView>,
    /// Programs apply leaves alone.
    pub foreign: Vec<ForeignView>,
    /// Things worth knowing that change nothing.
    pub notes: Vec<String>,
    #[serde(skip)]
    pub(crate) work: Work,
}

impl Plan {
    /// Whether applying would change nothing on the node.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Whether applying would change nothing, the record included (it
    /// forgets objects that are gone and confirms pairs a killed run made).
    pub(crate) fn is_noop(&self) -> bool {
        let w = &self.work;
        self.is_empty()
            && w.forget_links.is_empty()
            && w.forget_pairs.is_empty()
            && w.confirm_pairs.is_empty()
            && w.adopt_links.is_empty()
            && w.proofs == w.owned.hooks
    }
}

/// What the executor runs, phase by phase.
#[derive(Debug, Clone, Default)]
pub(crate) struct Work {
    /// The ownership record as read.
    pub(crate) owned: Ownership,
    /// Phase 1, concurrently: pairs.
    pub(crate) pairs: Vec<PairWork>,
    /// Phase 2, one job per hook: chains.
    pub(crate) chains: Vec<ChainWork>,
    /// Phase 3: managed pairs the spec no longer has (`--prune`).
    pub(crate) deletions: Vec<PairDeletion>,
    /// Managed links off their hooks (defunct, or attached elsewhere) whose
    /// pins go, before the chains are worked on.
    pub(crate) unpins: Vec<Unpin>,
    /// Records of objects that are gone, dropped when the record is next written.
    pub(crate) forget_links: Vec<LinkKey>,
    pub(crate) forget_pairs: Vec<String>,
    /// Pairs apply was creating when a run died, found made, and pairs
    /// adopted: their ifindexes, recorded when the record is next written.
    pub(crate) confirm_pairs: Vec<(String, u32)>,
    /// Links adopted as they are: recorded, not touched.
    pub(crate) adopt_links: Vec<(LinkKey, OwnedLink)>,
    /// The proofs of the hooks this plan leaves as they are, checked now.
    pub(crate) proofs: BTreeMap<String, HookProof>,
}

/// A peer to move back into the namespace the spec gives it.
#[derive(Debug, Clone)]
pub(crate) struct PeerMove {
    pub(crate) to: netns::NetnsRef,
    /// Where it is now (for the undo).
    pub(crate) from: netns::NetnsRef,
    /// Whether it is up there (a move brings it down; the undo brings it up).
    pub(crate) was_up: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum PairWork {
    Create(PairSpec),
    Change { name: String, change: PairChange, mtu: Option<u32>, up: bool, peer_move: Option<PeerMove> },
    Recreate { spec: Box<PairSpec>, old: Box<PairSpec> },
}

#[derive(Debug, Clone)]
pub(crate) struct PairDeletion {
    pub(crate) name: String,
    /// How to create it again if a later step fails.
    pub(crate) restore: PairSpec,
    /// Its managed links, to re-attach on restore.
    pub(crate) links: Vec<(Hook, LinkKey, u32)>,
}

/// The work on one hook.
#[derive(Debug, Clone)]
pub(crate) struct ChainWork {
    pub(crate) device: String,
    pub(crate) hook: Hook,
    /// Managed links to detach (gone from the chain, or pruned).
    pub(crate) removals: Vec<Removal>,
    /// The managed programs in spec order.
    pub(crate) wants: Vec<Want>,
    /// The digest of the spec's chain (None: the hook is not in the spec),
    /// for the proof recorded once the chain is made.
    pub(crate) digest: Option<String>,
}

/// A managed link's pin that goes because its link is off its hook.
#[derive(Debug, Clone)]
pub(crate) struct Unpin {
    pub(crate) key: LinkKey,
    pub(crate) hook: Hook,
    /// The link the pin holds (checked again before it goes).
    pub(crate) link_id: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct Removal {
    pub(crate) key: LinkKey,
    pub(crate) link_id: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct Want {
    pub(crate) key: LinkKey,
    /// What happened to the link this one replaces (drift), for the log.
    pub(crate) repair: Option<String>,
    pub(crate) entry: Managed,
    pub(crate) fingerprint: String,
    pub(crate) how: How,
}

#[derive(Debug, Clone)]
pub(crate) enum How {
    /// A new link; `stale` is the link off its hook whose pin holds the
    /// name now (unpinned first), and `reuse` that link's program when it
    /// is still the one apply set (its maps, counts and rules kept).
    New { stale: Option<u32>, reuse: Option<Current> },
    /// The link stays where it is.
    Keep(Current),
    /// The link is replaced by one at the right place, with the same program
    /// unless `replace`.
    Move(Current),
}

#[derive(Debug, Clone)]
pub(crate) struct Current {
    pub(crate) link_id: u32,
    pub(crate) prog_id: u32,
    /// The program must be replaced (object or settings changed).
    pub(crate) replace: bool,
    /// Rules to write (None: they are as the spec says).
    pub(crate) rules: Option<Vec<crate::maps::firewall::Rule>>,
    /// Redirect entries to write (None: as the spec says).
    pub(crate) entries: Option<BTreeMap<IpAddr, String>>,
}

impl Want {
    pub(crate) fn needs_work(&self) -> bool {
        match &self.how {
            How::New { .. } | How::Move(_) => true,
            How::Keep(c) => c.replace || c.rules.is_some() || c.entries.is_some(),
        }
    }
}

/// What a managed program is made from: the object's bytes, the function,
/// the settings (or, for a pinned program, the program it names now).
/// `pinned_program` gives the id of the program a `pinned:PATH` names now.
pub(crate) fn fingerprint(
    prog: &ProgSpec,
    globals: &[(String, Vec<u8>)],
    pinned_program: impl FnOnce(&ProgSpec) -> Result<u32, ApplyError>,
) -> Result<String, ApplyError> {
    let mut h = Sha256::new();
    match programs::prepare(prog)? {
        Some(p) => {
            h.update(&p.object);
            h.update([0]);
            h.update(p.function.as_bytes());
        }
        None => {
            // pinned:PATH: the program pinned there now.
            h.update(format!("{prog}#{}", pinned_program(prog)?).as_bytes());
        }
    }
    let mut globals = globals.to_vec();
    globals.sort();
    for (k, v) in globals {
        h.update([0]);
        h.update(k.as_bytes());
        h.update([b'=']);
        h.update(&v);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
