//! The read side: chains as `query` shows them (with our pins), and the one
//! program on a chain that a map command (firewall, redirect, stats, logs)
//! works on.

use super::*;

/// One slot in `query` output.
#[derive(Debug, Clone, Serialize)]
pub struct SlotView {
    pub position: usize,
    pub prog_id: u32,
    pub name: String,
    pub tag: String,
    pub link_id: Option<u32>,
    pub pin: Option<String>,
}

/// One hook in `query` output.
#[derive(Debug, Clone, Serialize)]
pub struct HookView {
    /// The device's name.
    pub ifname: String,
    /// The device's ifindex.
    pub ifindex: u32,
    /// The hook.
    pub hook: Hook,
    /// The chain's revision (it changes with every attach and detach).
    pub revision: u64,
    /// The programs in the order they run.
    pub programs: Vec<SlotView>,
}

impl Hooks<'_> {
    /// Link id -> pin path, for the links pinned under the layout: those of
    /// one device (cheap) or all of them.
    pub(super) fn pins_by_link(&self, device: Option<&Device>) -> HashMap<u32, String> {
        let layout = Layout::unchecked(&self.bpffs);
        let pinned = match device {
            Some(d) => Hook::ALL.into_iter().flat_map(|h| layout.links_on(&d.netns, &d.name, h)).collect(),
            None => layout.links(),
        };
        pinned
            .into_iter()
            .filter_map(|l| pins::open_link(&l.path).ok().map(|(_, info)| (info.id, l.path.display().to_string())))
            .collect()
    }

    pub(super) fn hook_view(dev: &Device, hook: Hook, chain: &Chain, pins: &HashMap<u32, String>) -> HookView {
        let programs = chain
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let info = bpf::prog_info_by_id(s.prog_id);
                SlotView {
                    position: i + 1,
                    prog_id: s.prog_id,
                    name: info.as_ref().map(|i| i.name()).unwrap_or_else(|| "?".into()),
                    tag: info.as_ref().map(|i| i.tag_hex()).unwrap_or_default(),
                    link_id: s.link_id,
                    pin: s.link_id.and_then(|l| pins.get(&l).cloned()),
                }
            })
            .collect();
        HookView { ifname: dev.name.clone(), ifindex: dev.ifindex, hook, revision: chain.revision, programs }
    }

    /// `netkit query`: the chains of one hook, of one device's hooks, or of
    /// every hook in the namespace that has programs.
    pub async fn query(&self, device: Option<&str>, hook: Option<Hook>) -> Result<Vec<HookView>, AttachError> {
        let mut out = Vec::new();
        let devices: Vec<(Device, bool)> = match device {
            Some(name) => {
                let (dev, link) = self.device_and_link(name).await?;
                vec![(dev, link.role() == Some(Role::Primary))]
            }
            None => {
                // Every device here shares one namespace: name it once, not
                // once per device (it reads /run/netns each time).
                let here = netns::current_name();
                self.nl
                    .links()?
                    .into_iter()
                    .map(|l| {
                        let primary = l.role() == Some(Role::Primary);
                        (Device::of(&l, here.clone()), primary)
                    })
                    .collect()
            }
        };
        let all = device.is_none();
        let pins = self.pins_by_link(if all { None } else { devices.first().map(|(d, _)| d) });
        for (dev, primary) in devices {
            let hooks: Vec<Hook> = match hook {
                Some(h) => vec![dev.hook(h)],
                None if primary => Hook::ALL.to_vec(),
                None => vec![Hook::Ingress, Hook::Egress],
            };
            for h in hooks {
                match HookRef::new(dev.ifindex, h).query() {
                    Ok(chain) if all && chain.slots.is_empty() => {}
                    Ok(chain) => out.push(Self::hook_view(&dev, h, &chain, &pins)),
                    // Devices without a tcx hook cannot be skipped silently
                    // when named; in a full listing, move on.
                    Err(_) if all => {}
                    Err(err) => return Err(self.explain(err, &dev, h, Context::default()).await),
                }
            }
        }
        Ok(out)
    }

    /// The program on DEV HOOK that `target` names (a program, or the program
    /// of a link) or, without `target`, the one program on the chain that
    /// `fits`; `kind` names what is looked for in messages.
    pub async fn program_on(
        &self,
        device: &str,
        hook: Hook,
        target: Option<&RefSpec>,
        kind: &str,
        fits: impl Fn(u32, &str) -> bool,
    ) -> Result<(Device, SlotView), AttachError> {
        let dev = self.device(device).await?;
        let hook = dev.hook(hook);
        let chain = match HookRef::new(dev.ifindex, hook).query() {
            Ok(c) => c,
            Err(err) => return Err(self.explain(err, &dev, hook, Context::default()).await),
        };
        let view = Self::hook_view(&dev, hook, &chain, &self.pins_by_link(Some(&dev)));
        let found: Vec<SlotView> = match target {
            Some(r) => {
                let layout = Layout::unchecked(&self.bpffs);
                let scope = Scope { layout: &layout, netns: &dev.netns, device: &dev.name, hook };
                let resolved = refs::resolve(r, &scope)?;
                // A link is found by its own id on the chain (the kernel names
                // each slot's owner), never by the ifindex in its info: for a
                // peer link that is the peer's (see check_link_on).
                let slot = anchor_index(&chain, &resolved).map(|i| view.programs[i].clone()).ok_or_else(|| {
                    AttachError::Invalid(format!(
                        "{} is not on {} {hook} (see `netkit query {} {hook}`)",
                        resolved.describe(),
                        dev.name,
                        dev.name
                    ))
                })?;
                if !fits(slot.prog_id, &slot.name) {
                    return Err(AttachError::Invalid(format!(
                        "{r} on {} {hook} is program {} ({}), not a {kind}",
                        dev.name, slot.prog_id, slot.name
                    )));
                }
                vec![slot]
            }
            None => view.programs.iter().filter(|s| fits(s.prog_id, &s.name)).cloned().collect(),
        };
        match found.len() {
            1 => Ok((dev, found.into_iter().next().expect("one"))),
            0 => Err(AttachError::Invalid(format!(
                "no {kind} on {} {hook} (see `netkit query {} {hook}`)",
                dev.name, dev.name
            ))),
            _ => Err(AttachError::Invalid(format!(
                "several {kind}s on {} {hook} ({}); name one with REF (prog:ID or link:ID)",
                dev.name,
                found.iter().map(|s| format!("prog {}", s.prog_id)).collect::<Vec<_>>().join(", ")
            ))),
        }
    }
}
