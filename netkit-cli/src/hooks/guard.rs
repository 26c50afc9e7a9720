//! What decides whether a link may be touched: is it on this hook, and did
//! this tool pin it (else `--force`, naming who holds it).

use super::*;

impl Hooks<'_> {
    /// Refuses to touch a link this tool did not pin, unless forced, saying
    /// what holds it.
    pub(super) fn guard(&self, link: &Resolved, force: bool) -> Result<Option<pins::PinnedLink>, AttachError> {
        let layout = Layout::unchecked(&self.bpffs);
        let ours = match link.pin.as_deref().and_then(|p| layout.parse_path(p)) {
            Some(pinned) => Some(pinned),
            None => layout.find_by_id(link.id),
        };
        if ours.is_some() || force {
            return Ok(ours);
        }
        let holders = owners::holders(link.id);
        let held = if holders.is_empty() {
            "no holder could be found".to_string()
        } else {
            format!("held by {}", holders.join(", "))
        };
        Err(AttachError::Refused(format!(
            "link {} was not pinned by netkit ({held}); another tool owns it: pass --force to change it anyway",
            link.id
        )))
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
