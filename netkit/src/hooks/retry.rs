//! The revision-retry engine: a change is made against a fresh revision and
//! retried on ESTALE while its anchor is still on the chain; and the helpers
//! that turn a position into the kernel's anchor or a slot.

use super::*;

/// How many times a position is re-resolved after ESTALE before giving up.
pub(crate) const RETRIES: usize = 8;

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

/// What an anchor names on a chain: a link (found by the owner id the kernel
/// reports per slot) or a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OnChain {
    Link(u32),
    Prog(u32),
}

impl OnChain {
    pub(super) fn of(r: &Resolved) -> Self {
        if r.is_link() { Self::Link(r.id) } else { Self::Prog(r.id) }
    }

    /// Where it sits on `chain`, if it is there.
    pub(super) fn index(self, chain: &Chain) -> Option<usize> {
        match self {
            Self::Link(id) => chain.slots.iter().position(|s| s.link_id == Some(id)),
            Self::Prog(id) => chain.slots.iter().position(|s| s.prog_id == id),
        }
    }
}

/// Where the object an anchor names sits on the chain, if it is there.
pub(super) fn anchor_index(chain: &Chain, anchor: &Resolved) -> Option<usize> {
    OnChain::of(anchor).index(chain)
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
pub(super) fn slot_at<'c>(chain: &'c Chain, position: &Position, anchor: Option<OnChain>) -> Option<&'c Slot> {
    let at = |i: Option<usize>| i.and_then(|i| chain.slots.get(i));
    let anchor_at = || anchor.and_then(|a| a.index(chain));
    match position {
        Position::First => chain.slots.first(),
        Position::Last => chain.slots.last(),
        Position::Before(_) => at(anchor_at().and_then(|i| i.checked_sub(1))),
        Position::After(_) => at(anchor_at().map(|i| i + 1)),
    }
}

/// Runs `op` against a fresh revision (and the chain `query` read with it),
/// re-resolving and retrying on ESTALE while the anchor is still on the
/// chain. With an explicit revision the kernel's answer is final, and no
/// chain is read for `op`. `query` is the seam: the hook's BPF_PROG_QUERY in
/// use, a scripted chain in the tests.
pub(super) fn with_revision<T>(
    mut query: impl FnMut() -> Result<Chain, MprogError>,
    explicit: Option<u64>,
    anchor: Option<OnChain>,
    mut op: impl FnMut(Option<u64>, Option<&Chain>) -> Result<T, MprogError>,
) -> Result<T, (MprogError, Option<u64>, Option<Chain>)> {
    if explicit.is_some() {
        return op(explicit, None).map_err(|e| (e, explicit, None));
    }
    let mut last = None;
    for attempt in 0..RETRIES {
        let chain = query().map_err(|e| (e, None, None))?;
        if attempt > 0
            && let Some(a) = anchor
            && a.index(&chain).is_none()
        {
            // The anchor went away while we retried: report that, not ESTALE.
            return Err((MprogError::found(Op::LinkCreate, Refusal::AnchorGone), None, Some(chain)));
        }
        // An empty hook needs no revision check, and an emptied netkit hook
        // reports revision 1 while counting on internally.
        let expected = (!chain.slots.is_empty()).then_some(chain.revision);
        match op(expected, Some(&chain)) {
            Err(e) if e.is(libc::ESTALE) => last = Some((e, expected, None)),
            Err(e) => return Err((e, expected, None)),
            Ok(v) => return Ok(v),
        }
    }
    Err(last.expect("at least one attempt"))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn chain(revision: u64, slots: &[(u32, Option<u32>)]) -> Chain {
        Chain { revision, slots: slots.iter().map(|&(prog_id, link_id)| Slot { prog_id, link_id }).collect() }
    }

    fn stale() -> MprogError {
        MprogError::new(Op::LinkCreate, libc::ESTALE)
    }

    #[test]
    fn an_explicit_revision_is_final_and_reads_no_chain() {
        let queried = Cell::new(0);
        let seen = Cell::new(None);
        let r: Result<(), _> = with_revision(
            || {
                queried.set(queried.get() + 1);
                Ok(chain(5, &[(1, None)]))
            },
            Some(3),
            None,
            |rev, c| {
                seen.set(Some((rev, c.is_some())));
                Err(stale())
            },
        );
        let (e, expected, now) = r.unwrap_err();
        assert_eq!((e.refusal, expected, now), (Refusal::Errno(libc::ESTALE), Some(3), None));
        assert_eq!(queried.get(), 0);
        assert_eq!(seen.get(), Some((Some(3), false)));
    }

    #[test]
    fn estale_is_retried_against_each_fresh_revision() {
        let revisions = Cell::new(10);
        let mut tried = Vec::new();
        let r = with_revision(
            || {
                revisions.set(revisions.get() + 1);
                Ok(chain(revisions.get(), &[(1, Some(7))]))
            },
            None,
            Some(OnChain::Link(7)),
            |rev, _| {
                tried.push(rev);
                if tried.len() < 3 { Err(stale()) } else { Ok("done") }
            },
        );
        assert_eq!(r.unwrap(), "done");
        assert_eq!(tried, vec![Some(11), Some(12), Some(13)]);
    }

    #[test]
    fn retries_are_bounded_and_end_with_the_last_estale() {
        let mut attempts = 0;
        let r: Result<(), _> = with_revision(
            || Ok(chain(2, &[(1, None)])),
            None,
            None,
            |_, _| {
                attempts += 1;
                Err(stale())
            },
        );
        let (e, expected, _) = r.unwrap_err();
        assert_eq!((e.refusal, expected, attempts), (Refusal::Errno(libc::ESTALE), Some(2), RETRIES));
    }

    #[test]
    fn an_anchor_gone_while_retrying_is_reported_as_gone() {
        let first = Cell::new(true);
        let r: Result<(), _> = with_revision(
            || Ok(if first.replace(false) { chain(4, &[(9, None), (3, None)]) } else { chain(5, &[(3, None)]) }),
            None,
            Some(OnChain::Prog(9)),
            |_, _| Err(stale()),
        );
        let (e, _, now) = r.unwrap_err();
        assert_eq!(e.refusal, Refusal::AnchorGone, "not ESTALE: the anchor itself went away");
        assert_eq!(now, Some(chain(5, &[(3, None)])));
    }

    #[test]
    fn an_empty_hook_is_changed_without_a_revision_and_other_errors_are_final() {
        let mut calls = 0;
        let r: Result<(), _> = with_revision(
            || Ok(chain(1, &[])),
            None,
            None,
            |rev, _| {
                calls += 1;
                assert_eq!(rev, None, "an emptied netkit hook reports 1 while counting on");
                Err(MprogError::new(Op::LinkCreate, libc::EEXIST))
            },
        );
        assert!(r.unwrap_err().0.is(libc::EEXIST));
        assert_eq!(calls, 1);
    }

    #[test]
    fn positional_detach_picks_the_slot_itself_never_past_an_end() {
        let c = chain(6, &[(1, None), (2, Some(20)), (3, None)]);
        let pos = |p: Position, a: Option<OnChain>| slot_at(&c, &p, a).map(|s| s.prog_id);
        let any = || crate::hooks::refs::RefSpec::Prog(1);
        assert_eq!(pos(Position::First, None), Some(1));
        assert_eq!(pos(Position::Last, None), Some(3));
        assert_eq!(pos(Position::Before(any()), Some(OnChain::Link(20))), Some(1));
        assert_eq!(pos(Position::After(any()), Some(OnChain::Prog(2))), Some(3));
        // The kernel would clamp these to the end slot; the tool finds nothing.
        assert_eq!(pos(Position::Before(any()), Some(OnChain::Prog(1))), None);
        assert_eq!(pos(Position::After(any()), Some(OnChain::Prog(3))), None);
        assert_eq!(pos(Position::After(any()), Some(OnChain::Prog(99))), None, "an anchor not on the chain");
        assert_eq!(slot_at(&chain(1, &[]), &Position::First, None), None);
    }
}
