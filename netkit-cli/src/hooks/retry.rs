//! The revision-retry engine: a change is made against a fresh revision and
//! retried on ESTALE while its anchor is still on the chain; and the helpers
//! that turn a position into the kernel's anchor or a slot.

use super::*;

/// How many times a position is re-resolved after ESTALE before giving up.
pub const RETRIES: usize = 8;

pub(super) fn position_text(p: &Position, anchor: Option<&Resolved>) -> String {
    match (p, anchor) {
        (Position::First, _) => "first".into(),
        (Position::Last, _) => "last".into(),
        (Position::Before(_), Some(a)) => format!("before {}", a.describe()),
        (Position::After(_), Some(a)) => format!("after {}", a.describe()),
        (Position::Before(r), None) => format!("before {r}"),
        (Position::After(r), None) => format!("after {r}"),
    }
}

/// Where the object an anchor names sits on the chain, if it is there.
pub(super) fn anchor_index(chain: &Chain, anchor: &Resolved) -> Option<usize> {
    if anchor.is_link() {
        chain.slots.iter().position(|s| s.link_id == Some(anchor.id))
    } else {
        chain.slots.iter().position(|s| s.prog_id == anchor.id)
    }
}

pub(super) fn anchor_present(chain: &Chain, anchor: &Resolved) -> bool {
    anchor_index(chain, anchor).is_some()
}

/// The kernel's anchor for a position; `anchor_ref` is the resolved REF of
/// --before/--after.
pub(super) fn anchor_for<'a>(position: &Position, anchor_ref: Option<&'a Resolved>) -> Anchor<'a> {
    match (position, anchor_ref) {
        (Position::First, _) => Anchor::First,
        (Position::Last, _) => Anchor::Last,
        (Position::Before(_), Some(a)) => Anchor::Before(a.target()),
        (Position::After(_), Some(a)) => Anchor::After(a.target()),
        _ => unreachable!("--before/--after REFs are resolved first"),
    }
}

/// Which slot a positional detach removes. The kernel clamps a position past
/// either end to the end slot (so "before the first" would remove the first),
/// hence the tool picks the slot itself and refuses when there is none.
pub(super) fn slot_at<'c>(chain: &'c Chain, position: &Position, anchor_ref: Option<&Resolved>) -> Option<&'c Slot> {
    let at = |i: Option<usize>| i.and_then(|i| chain.slots.get(i));
    match position {
        Position::First => chain.slots.first(),
        Position::Last => chain.slots.last(),
        Position::Before(_) => at(anchor_ref.and_then(|a| anchor_index(chain, a)).and_then(|i| i.checked_sub(1))),
        Position::After(_) => at(anchor_ref.and_then(|a| anchor_index(chain, a)).map(|i| i + 1)),
    }
}

impl Hooks<'_> {
    /// Runs `op` against a fresh revision (and the chain read with it),
    /// re-resolving and retrying on ESTALE while the anchor is still on the
    /// chain. With an explicit revision the kernel's answer is final, and no
    /// chain is read for `op`.
    pub(super) fn with_revision<T>(
        href: HookRef,
        explicit: Option<u64>,
        anchor: Option<&Resolved>,
        mut op: impl FnMut(Option<u64>, Option<&Chain>) -> Result<T, MprogError>,
    ) -> Result<T, (MprogError, Option<u64>, Option<Chain>)> {
        if explicit.is_some() {
            return op(explicit, None).map_err(|e| (e, explicit, None));
        }
        let mut last = None;
        for attempt in 0..RETRIES {
            let chain = href.query().map_err(|e| (e, None, None))?;
            if attempt > 0
                && let Some(a) = anchor
                && !anchor_present(&chain, a)
            {
                // The anchor went away while we retried: report that, not ESTALE.
                return Err((MprogError::new(Op::LinkCreate, libc::ENOENT), None, Some(chain)));
            }
            // An empty hook needs no revision check, and an emptied netkit hook
            // reports revision 1 while counting on internally.
            let expected = (!chain.slots.is_empty()).then_some(chain.revision);
            match op(expected, Some(&chain)) {
                Err(e) if e.errno == libc::ESTALE => last = Some((e, expected, None)),
                Err(e) => return Err((e, expected, None)),
                Ok(v) => return Ok(v),
            }
        }
        Err(last.expect("at least one attempt"))
    }
}
