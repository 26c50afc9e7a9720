//! What decides whether a link may be touched: is it on this hook, and did
//! this tool pin it (else `--force`, naming who holds it).

use std::path::Path;

use super::*;

impl Hooks<'_> {
    /// Refuses to touch a link this tool did not pin, unless forced, saying
    /// what holds it.
    pub(super) fn guard(&self, link: &Resolved, force: bool) -> Result<Option<pins::PinnedLink>, AttachError> {
        let layout = Layout::unchecked(&self.bpffs);
        decide(&layout, link.id, link.pin.as_deref(), force, |id| layout.find_by_id(id), owners::holders)
    }

    /// Checks that `link` sits on DEV HOOK (or is defunct, which update and
    /// detach report in their own words).
    ///
    /// A link's info cannot say this by ifindex. It names the device the
    /// kernel keeps in the link: for tcx and netkit primary links that is the
    /// device named at attach time, but for a netkit *peer* link it is the
    /// peer, because `netkit_dev_fetch()` swaps the primary for `nk->peer`
    /// when the attach type is BPF_NETKIT_PEER and `netkit_link_init()` keeps
    /// that device (every kernel from 6.7 to 7.x; 6.16 moved the attach type
    /// from `nkl->location` to `link->attach_type` without changing what is
    /// reported). That ifindex is counted in the peer's namespace, which is
    /// usually not ours, and an ifindex is only unique within one namespace
    /// anyway (every pod's eth0 tends to be 2). The exact test is the hook's
    /// own chain: BPF_PROG_QUERY on the primary names the owning link of
    /// every slot, for all four hooks alike.
    /// `op` is what the user asked for, for the explanation of a refusal.
    pub(super) async fn check_link_on(
        &self,
        link: &Resolved,
        info: &bpf::LinkInfo,
        dev: &Device,
        hook: Hook,
        op: Op,
    ) -> Result<(), AttachError> {
        if info.ifindex == 0 {
            return Ok(());
        }
        if info.attach_type != hook.attach_type() {
            let on = Hook::from_attach_type(info.attach_type)
                .map_or("another kind of hook".into(), |h| format!("a {h} hook"));
            return Err(AttachError::Invalid(format!(
                "{} is attached to {on}, not to {} {hook}; see `netkit query {} {hook}` for the links there",
                link.describe(),
                dev.name,
                dev.name
            )));
        }
        let chain = match HookRef::new(dev.ifindex, hook).query() {
            Ok(c) => c,
            Err(err) => return Err(self.explain(MprogError { op, ..err }, dev, hook, Context::default()).await),
        };
        if chain.slots.iter().any(|s| s.link_id == Some(info.id)) {
            return Ok(());
        }
        Err(AttachError::Invalid(format!(
            "{} is attached to the {hook} hook of another device, not to {} {hook}; see `netkit query {} {hook}` for the links there",
            link.describe(),
            dev.name,
            dev.name
        )))
    }
}

/// The ownership decision. A link is this tool's when the REF reached it
/// through one of this tool's pins, or when one of those pins holds a link of
/// the same id (`find_by_id`, asked only then); this tool's link comes back
/// with its pin, a foreign one only with `force` (and no pin), else the
/// refusal names its `holders`. The two lookups are seams for the tests.
fn decide(
    layout: &Layout,
    link_id: u32,
    ref_pin: Option<&Path>,
    force: bool,
    find_by_id: impl FnOnce(u32) -> Option<pins::PinnedLink>,
    holders: impl FnOnce(u32) -> Vec<String>,
) -> Result<Option<pins::PinnedLink>, AttachError> {
    let ours = match ref_pin.and_then(|p| layout.parse_path(p)) {
        Some(pinned) => Some(pinned),
        None => find_by_id(link_id),
    };
    if ours.is_some() || force {
        return Ok(ours);
    }
    let holders = holders(link_id);
    let held = if holders.is_empty() {
        "no holder could be found".to_string()
    } else {
        format!("held by {}", holders.join(", "))
    };
    Err(AttachError::Refused(format!(
        "link {link_id} was not pinned by netkit ({held}); another tool owns it: pass --force to change it anyway"
    )))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn layout() -> Layout {
        Layout::unchecked(Path::new("/sys/fs/bpf"))
    }

    fn pinned(name: &str) -> pins::PinnedLink {
        let path = layout().link_path("init", "eth0", Hook::Ingress, name);
        layout().parse_path(&path).expect("a layout path parses")
    }

    fn none(_: u32) -> Option<pins::PinnedLink> {
        None
    }

    fn nobody(_: u32) -> Vec<String> {
        Vec::new()
    }

    #[test]
    fn a_ref_through_our_pin_is_ours_without_searching() {
        let searched = Cell::new(false);
        let path = layout().link_path("pod", "h0", Hook::Peer, "fw");
        let ours = decide(
            &layout(),
            7,
            Some(&path),
            false,
            |_| {
                searched.set(true);
                None
            },
            nobody,
        )
        .unwrap()
        .expect("ours");
        assert_eq!(
            (ours.netns.as_str(), ours.device.as_str(), ours.hook, ours.name.as_str()),
            ("pod", "h0", Hook::Peer, "fw")
        );
        assert!(!searched.get(), "a pin in the layout decides alone");
    }

    #[test]
    fn a_foreign_pin_or_a_bare_id_is_ours_only_when_we_pinned_the_same_link() {
        let elsewhere = Path::new("/sys/fs/bpf/tc/globals/cilium_link");
        // Pinned by someone else, and by us too under another path: ours.
        let found = decide(&layout(), 7, Some(elsewhere), false, |id| (id == 7).then(|| pinned("x")), nobody);
        assert_eq!(found.unwrap().map(|p| p.name), Some("x".into()));
        // link:ID, and we hold it: ours.
        let found = decide(&layout(), 7, None, false, |id| (id == 7).then(|| pinned("y")), nobody);
        assert_eq!(found.unwrap().map(|p| p.name), Some("y".into()));
        // A path under our root that is not link/<netns>/<dev>/<hook>/<name> is not ours.
        let odd = layout().link_path("init", "eth0", Hook::Ingress, "a").join("deeper");
        assert!(decide(&layout(), 7, Some(&odd), false, none, nobody).is_err());
    }

    #[test]
    fn a_foreign_link_is_refused_naming_its_holders_unless_forced() {
        let err = decide(&layout(), 9, None, false, none, |id| vec![format!("process 812 (agent) for {id}")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("link 9 was not pinned by netkit (held by process 812 (agent) for 9)"), "{err}");
        assert!(err.contains("--force"), "{err}");
        let err = decide(&layout(), 9, None, false, none, nobody).unwrap_err().to_string();
        assert!(err.contains("no holder could be found"), "{err}");
        // Forced: allowed, with no pin of ours to remove.
        let asked = Cell::new(false);
        let forced = decide(&layout(), 9, None, true, none, |_| {
            asked.set(true);
            Vec::new()
        });
        assert!(forced.unwrap().is_none());
        assert!(!asked.get(), "holders are looked up only to explain a refusal");
    }
}
