//! `netkit update`: a link's program replaced in place (BPF_LINK_UPDATE),
//! keeping the link, its id and its slot.

use super::*;

/// An update request: the link (REF) on DEV HOOK gets PROG.
#[derive(Debug, Clone)]
pub struct UpdateRequest {
    /// The device, by name in the current namespace.
    pub device: String,
    /// The hook on that device.
    pub hook: Hook,
    /// The link to update.
    pub target: RefSpec,
    /// The program it runs from now on.
    pub prog: ProgSpec,
    /// Fail unless the link still runs this program.
    pub expected_old: Option<RefSpec>,
    /// How to load the new program, when it is not in the kernel yet.
    pub load: LoadOptions,
    /// Update a link another tool owns.
    pub force: bool,
}

impl Hooks<'_> {
    /// `netkit update`: replaces a link's program in place, keeping its slot.
    pub async fn update(&self, req: &UpdateRequest) -> Result<Outcome, AttachError> {
        let UpdateRequest { device, hook, target, prog, expected_old, load, force } = req;
        let (hook, force, expected_old) = (*hook, *force, expected_old.as_ref());
        if let RefSpec::Prog(id) = target {
            return Err(AttachError::Invalid(format!(
                "prog:{id} names a program; update replaces the program of a link: name the link (link:ID, pin:PATH or NAME), or use `attach --plain --replace prog:{id}` for a plain one"
            )));
        }
        if let Some(RefSpec::Link(_) | RefSpec::Name(_)) = expected_old {
            return Err(AttachError::Invalid("--expected-old takes the program the link runs now: prog:ID".into()));
        }
        let dev = self.device(device).await?;
        let hook = dev.hook(hook);
        programs::check_hook(prog, hook)?;
        let layout = Layout::unchecked(&self.bpffs);
        let scope = Scope { layout: &layout, netns: &dev.netns, device: &dev.name, hook };
        let link = refs::resolve(target, &scope)?;
        let Some(info) = link.link_info else {
            return Err(AttachError::Invalid(format!("{target} is a program; update needs a link")));
        };
        self.check_link_on(&link, &info, &dev, hook, Op::LinkUpdate).await?;
        let ours = self.guard(&link, force)?;
        let old = expected_old.map(|r| refs::resolve(r, &scope)).transpose()?;
        let loaded = programs::load(prog, load)?;
        let held = super::link::Link::from_parts(link.fd, info);
        if let Err(err) = held.update(loaded.fd.as_fd(), old.as_ref().map(|o| o.fd.as_fd())) {
            let ctx = Context {
                link: Some(format!("link {}", info.id)),
                prog: Some(match &old {
                    Some(o) if err.is(libc::EPERM) => prog_label(o.id),
                    _ => loaded.describe(),
                }),
                ..Default::default()
            };
            return Err(self.explain(err, &dev, hook, ctx).await);
        }
        let action = format!("link {} now runs {} (was {})", info.id, loaded.describe(), prog_label(info.prog_id));
        Ok(Self::outcome(
            &dev,
            hook,
            Some(loaded.id()),
            Some(info.id),
            ours.map(|p| p.path.display().to_string()),
            action,
        ))
    }
}
