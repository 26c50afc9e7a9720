//! Human tables and JSON, written to any `impl Write` so tests can read them;
//! `print` writes one value either way.

pub mod changes;

use std::io::{self, Write};

use serde::Serialize;

use netkit::{
    hooks::{HookView, LinkState, LinkView, Outcome, PruneAll, SystemLinkView},
    netlink::leases::QueueView,
    netlink::{device::DeviceView, links::Role},
    os::probe::{Report, Support},
};

/// Writes `value` as pretty JSON followed by a newline.
pub fn json<T: Serialize>(w: &mut impl Write, value: &T) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, value)?;
    writeln!(w)
}

fn support(s: &Support) -> String {
    match s {
        Support::Supported => "supported".into(),
        Support::Unsupported => "not supported".into(),
        Support::Unknown(why) => format!("unknown ({why})"),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

pub fn probe(w: &mut impl Write, r: &Report) -> io::Result<()> {
    let bpffs = if r.bpffs.mounted {
        format!("mounted at {}", r.bpffs.path)
    } else if r.bpffs.mounts.is_empty() {
        format!("not mounted at {}", r.bpffs.path)
    } else {
        format!("not mounted at {} (bpffs mounts: {})", r.bpffs.path, r.bpffs.mounts.join(", "))
    };
    let caps = &r.capabilities;
    let rows = [
        ("kernel", r.kernel.clone()),
        ("tcx", support(&r.tcx)),
        ("netkit", support(&r.netkit)),
        ("bpffs", bpffs),
        (
            "CAP_BPF",
            format!(
                "{}{}",
                yes_no(caps.cap_bpf),
                if !caps.cap_bpf && caps.cap_sys_admin { " (CAP_SYS_ADMIN covers it)" } else { "" }
            ),
        ),
        ("CAP_NET_ADMIN", yes_no(caps.cap_net_admin).into()),
        ("kernel BTF", if r.btf { "/sys/kernel/btf/vmlinux".into() } else { "absent".into() }),
        ("queue leasing", support(&r.queue_leasing)),
    ];
    for (k, v) in rows {
        writeln!(w, "{k:<14} {v}")?;
    }
    Ok(())
}

pub fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// A table indented by two spaces, under a heading line.
fn indented_table(w: &mut impl Write, rows: &[Vec<String>]) -> io::Result<()> {
    let mut buf = Vec::new();
    table(&mut buf, rows)?;
    for line in String::from_utf8_lossy(&buf).lines() {
        writeln!(w, "  {line}")?;
    }
    Ok(())
}

/// Left-aligned columns, two spaces apart; the header is the first row.
pub fn table(w: &mut impl Write, rows: &[Vec<String>]) -> io::Result<()> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0)).collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
            }
        }
        writeln!(w, "{}", line.trim_end())?;
    }
    Ok(())
}

fn peer_cell(v: &DeviceView) -> String {
    match &v.peer {
        None => "-".into(),
        Some(p) => {
            let name = p.name.clone().unwrap_or_else(|| "?".into());
            match &p.netns {
                Some(ns) => format!("{name}@{ns} ({})", p.ifindex),
                None => format!("{name} ({})", p.ifindex),
            }
        }
    }
}

fn role_cell(v: &DeviceView) -> String {
    match v.role {
        Some(Role::Primary) => "primary".into(),
        Some(Role::Peer) => "peer".into(),
        Some(Role::Single) => "single".into(),
        None => "-".into(),
    }
}

fn programs_cell(v: &DeviceView) -> String {
    match v.programs {
        Some(c) => format!("{}/{}", opt(&c.primary), opt(&c.peer)),
        None => "-".into(),
    }
}

pub fn devices(w: &mut impl Write, views: &[DeviceView]) -> io::Result<()> {
    let mut rows = vec![
        [
            "NAME",
            "IFINDEX",
            "KIND",
            "ROLE",
            "PEER",
            "MODE",
            "POLICY",
            "PEER-POLICY",
            "SCRUB",
            "PEER-SCRUB",
            "HEADROOM",
            "TAILROOM",
            "MTU",
            "STATE",
            "PROGS(P/PEER)",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for v in views {
        rows.push(vec![
            v.name.clone(),
            v.ifindex.to_string(),
            opt(&v.kind),
            role_cell(v),
            peer_cell(v),
            opt(&v.settings.mode),
            opt(&v.settings.policy),
            opt(&v.settings.peer_policy),
            opt(&v.settings.scrub),
            opt(&v.settings.peer_scrub),
            opt(&v.settings.headroom),
            opt(&v.settings.tailroom),
            opt(&v.mtu),
            v.operstate.clone(),
            programs_cell(v),
        ]);
    }
    table(w, &rows)
}

pub fn device(w: &mut impl Write, v: &DeviceView) -> io::Result<()> {
    let progs =
        v.programs.map(|c| format!("{} on the primary hook, {} on the peer hook", opt(&c.primary), opt(&c.peer)));
    let rows: Vec<(&str, String)> = vec![
        ("name", v.name.clone()),
        ("ifindex", v.ifindex.to_string()),
        ("kind", opt(&v.kind)),
        ("role", role_cell(v)),
        ("peer", peer_cell(v)),
        ("mode", opt(&v.settings.mode)),
        ("policy", opt(&v.settings.policy)),
        ("peer policy", opt(&v.settings.peer_policy)),
        ("scrub", opt(&v.settings.scrub)),
        ("peer scrub", opt(&v.settings.peer_scrub)),
        ("headroom", opt(&v.settings.headroom)),
        ("tailroom", opt(&v.settings.tailroom)),
        ("pairing", opt(&v.settings.pairing)),
        ("mtu", opt(&v.mtu)),
        ("state", v.operstate.clone()),
        ("address", opt(&v.address)),
        (
            "gso max",
            format!(
                "{} bytes, ipv4 {} bytes, {} segments",
                opt(&v.offload.gso_max_size),
                opt(&v.offload.gso_ipv4_max_size),
                opt(&v.offload.gso_max_segs)
            ),
        ),
        (
            "gro max",
            format!("{} bytes, ipv4 {} bytes", opt(&v.offload.gro_max_size), opt(&v.offload.gro_ipv4_max_size)),
        ),
        ("queues", format!("rx {} tx {}", opt(&v.queues.num_rx_queues), opt(&v.queues.num_tx_queues))),
        ("programs", progs.unwrap_or_else(|| "-".into())),
        (
            "packets",
            format!(
                "rx {} tx {} (dropped: rx {} tx {})",
                v.counters.rx_packets, v.counters.tx_packets, v.counters.rx_dropped, v.counters.tx_dropped
            ),
        ),
    ];
    for (k, val) in rows {
        writeln!(w, "{k:<12} {val}")?;
    }
    Ok(())
}

pub fn outcome(w: &mut impl Write, o: &Outcome) -> io::Result<()> {
    writeln!(w, "{} on {} {}", o.action, o.ifname, o.hook)?;
    if let Some(link) = o.link_id {
        writeln!(w, "  link      {link}")?;
    }
    if let Some(pin) = &o.pin {
        writeln!(w, "  pin       {pin}")?;
    }
    if let Some(p) = o.prog_id {
        writeln!(w, "  program   {p} ({})", o.prog_name.as_deref().unwrap_or("?"))?;
    }
    if let Some(pos) = o.position {
        writeln!(w, "  position  {pos}")?;
    }
    writeln!(w, "  revision  {}", o.revision)
}

pub fn hooks(w: &mut impl Write, views: &[HookView]) -> io::Result<()> {
    if views.is_empty() {
        return writeln!(w, "no programs on any hook");
    }
    for (i, v) in views.iter().enumerate() {
        if i > 0 {
            writeln!(w)?;
        }
        writeln!(w, "{} (ifindex {}) {}  revision {}", v.ifname, v.ifindex, v.hook, v.revision)?;
        if v.programs.is_empty() {
            writeln!(w, "  (no programs)")?;
            continue;
        }
        let mut rows = vec![["POS", "PROG", "NAME", "TAG", "LINK", "PIN"].map(String::from).to_vec()];
        for s in &v.programs {
            rows.push(vec![
                s.position.to_string(),
                s.prog_id.to_string(),
                s.name.clone(),
                s.tag.clone(),
                s.link_id.map_or_else(|| "plain".into(), |l| l.to_string()),
                s.pin.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        indented_table(w, &rows)?;
    }
    Ok(())
}

pub fn links(w: &mut impl Write, views: &[LinkView]) -> io::Result<()> {
    if views.is_empty() {
        return writeln!(w, "no links pinned by netkit");
    }
    let mut rows = vec![["NAME", "NETNS", "DEVICE", "HOOK", "LINK", "PROG", "STATE", "PIN"].map(String::from).to_vec()];
    for l in views {
        rows.push(vec![
            l.name.clone(),
            l.netns.clone(),
            l.device.clone(),
            l.hook.to_string(),
            opt(&l.link_id),
            match (&l.prog_id, &l.prog_name) {
                (Some(id), Some(n)) if !n.is_empty() => format!("{id} ({n})"),
                (id, _) => opt(id),
            },
            match (&l.state, &l.error) {
                (LinkState::Attached, _) => "attached".into(),
                (LinkState::Defunct, _) => "defunct".into(),
                (LinkState::Unreadable, e) => format!("unreadable ({})", e.as_deref().unwrap_or("?")),
            },
            l.pin.clone(),
        ]);
    }
    table(w, &rows)
}

/// `queue list`: a device's queues and their leases.
pub fn queues(w: &mut impl Write, queues: &[QueueView]) -> io::Result<()> {
    let mut rows = vec![["TYPE", "ID", "NAPI", "LEASE"].map(String::from).to_vec()];
    for q in queues {
        rows.push(vec![
            q.kind.into(),
            q.id.to_string(),
            opt(&q.napi_id),
            match &q.lease {
                Some(l) => format!(
                    "queue {} of ifindex {}{}",
                    l.queue,
                    l.ifindex,
                    l.netns_id.map(|n| format!(" (netns id {n})")).unwrap_or_default()
                ),
                None => "-".into(),
            },
        ]);
    }
    table(w, &rows)
}

/// `link prune`: what was unpinned.
pub fn pruned(w: &mut impl Write, views: &[LinkView]) -> io::Result<()> {
    if views.is_empty() {
        return writeln!(w, "no defunct links");
    }
    for l in views {
        writeln!(w, "unpinned defunct link {} ({} {} {}): {}", opt(&l.link_id), l.netns, l.device, l.hook, l.pin)?;
    }
    Ok(())
}

/// `link list --all`: every tcx and netkit link on the system.
pub fn system_links(w: &mut impl Write, views: &[SystemLinkView]) -> io::Result<()> {
    if views.is_empty() {
        return writeln!(w, "no tcx or netkit links on this system");
    }
    let mut rows = vec![
        ["LINK", "TYPE", "HOOK", "DEVICE", "NETNS", "PROG", "STATE", "NETKIT", "HELD BY"].map(String::from).to_vec(),
    ];
    for l in views {
        rows.push(vec![
            l.link_id.to_string(),
            l.kind.into(),
            opt(&l.hook),
            opt(&l.device),
            opt(&l.netns),
            if l.prog_name.is_empty() { l.prog_id.to_string() } else { format!("{} ({})", l.prog_id, l.prog_name) },
            match l.state {
                LinkState::Attached => "attached".into(),
                LinkState::Defunct => "defunct".into(),
                LinkState::Unreadable => "unreadable".into(),
            },
            if l.managed { "managed".into() } else { "-".into() },
            if l.held_by.is_empty() { "-".into() } else { l.holders_text() },
        ]);
    }
    table(w, &rows)
}

/// `link prune --all`: what was unpinned and what is left.
pub fn prune_all(w: &mut impl Write, r: &PruneAll) -> io::Result<()> {
    for l in &r.pruned {
        writeln!(w, "unpinned defunct link {} ({}, {})", l.link_id, l.kind, opt(&l.hook))?;
    }
    for l in &r.left {
        let why = if l.held_by_a_process() {
            "a process holds it; it goes when that process closes it"
        } else {
            "netkit did not pin it; pass --force to remove those pins"
        };
        writeln!(
            w,
            "left defunct link {} ({}, {}): held by {} ({why})",
            l.link_id,
            l.kind,
            opt(&l.hook),
            if l.held_by.is_empty() { "nothing found".into() } else { l.holders_text() }
        )?;
    }
    if r.pruned.is_empty() && r.left.is_empty() {
        writeln!(w, "no defunct links")?;
    }
    Ok(())
}

/// Writes one value as JSON (`json`) or as text through `text`: the same
/// value either way. The text is rendered whole before anything is written.
pub fn print<T: Serialize>(
    json: bool,
    out: &mut impl Write,
    value: &T,
    text: impl FnOnce(&mut Vec<u8>, &T) -> io::Result<()>,
) -> io::Result<()> {
    if json {
        self::json(out, value)?;
    } else {
        let mut buf = Vec::new();
        text(&mut buf, value)?;
        out.write_all(&buf)?;
    }
    Ok(())
}

/// A map of a program, in `prog show`.
#[derive(Debug, Serialize)]
pub struct MapView {
    pub id: u32,
    pub name: String,
    #[serde(rename = "type")]
    pub map_type: String,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

/// `prog show`: one loaded program.
#[derive(Debug, Serialize)]
pub struct ProgView {
    pub id: u32,
    pub name: String,
    pub tag: String,
    #[serde(rename = "type")]
    pub prog_type: String,
    pub verified_insns: u32,
    pub xlated_bytes: u32,
    pub jited_bytes: u32,
    pub run_cnt: u64,
    pub run_time_ns: u64,
    pub run_time_stats: bool,
    pub maps: Vec<MapView>,
    /// Where in this namespace it is attached: "DEV HOOK #POS (link N|plain)".
    pub attached: Vec<String>,
}

pub fn prog(w: &mut impl Write, v: &ProgView) -> io::Result<()> {
    writeln!(w, "program {} {} (tag {}, {})", v.id, v.name, v.tag, v.prog_type)?;
    writeln!(w, "  verified instructions  {}", v.verified_insns)?;
    writeln!(w, "  size                   {} bytes translated, {} bytes JITed", v.xlated_bytes, v.jited_bytes)?;
    if v.run_cnt > 0 || v.run_time_stats {
        let avg = v.run_time_ns.checked_div(v.run_cnt).unwrap_or(0);
        writeln!(w, "  runs                   {} in {} ns ({avg} ns each)", v.run_cnt, v.run_time_ns)?;
    } else {
        writeln!(w, "  runs                   not counted (turn kernel stats on with `netkit stats --enable`)")?;
    }
    if v.attached.is_empty() {
        writeln!(w, "  attached               nowhere in this network namespace")?;
    }
    for a in &v.attached {
        writeln!(w, "  attached               {a}")?;
    }
    if !v.maps.is_empty() {
        let mut rows = vec![["MAP", "NAME", "TYPE", "KEY", "VALUE", "ENTRIES"].map(String::from).to_vec()];
        for m in &v.maps {
            rows.push(vec![
                m.id.to_string(),
                m.name.clone(),
                m.map_type.clone(),
                m.key_size.to_string(),
                m.value_size.to_string(),
                m.max_entries.to_string(),
            ]);
        }
        indented_table(w, &rows)?;
    }
    Ok(())
}

pub fn rules(w: &mut impl Write, rules: &[netkit::maps::firewall::RuleView]) -> io::Result<()> {
    let mut rows = vec![["ID", "RULE", "HITS"].map(String::from).to_vec()];
    for r in rules {
        let id = if r.id == 0 { "-".to_string() } else { r.id.to_string() };
        rows.push(vec![id, r.rule.clone(), r.hits.to_string()]);
    }
    table(w, &rows)
}

pub fn stats(w: &mut impl Write, hooks: &[netkit::maps::stats::HookStats]) -> io::Result<()> {
    if hooks.is_empty() {
        return writeln!(w, "no programs on any hook");
    }
    for (i, h) in hooks.iter().enumerate() {
        if i > 0 {
            writeln!(w)?;
        }
        writeln!(w, "{} {}", h.ifname, h.hook)?;
        let mut rows = vec![["POS", "PROG", "NAME", "PACKETS", "BYTES", "RUNS", "AVG NS"].map(String::from).to_vec()];
        for p in &h.programs {
            let avg = if h.run_time_stats || p.run_cnt > 0 {
                p.run_time_ns.checked_div(p.run_cnt).unwrap_or(0).to_string()
            } else {
                "-".into()
            };
            rows.push(vec![
                p.position.to_string(),
                p.prog_id.to_string(),
                p.name.clone(),
                opt(&p.packets),
                opt(&p.bytes),
                if h.run_time_stats || p.run_cnt > 0 { p.run_cnt.to_string() } else { "-".into() },
                avg,
            ]);
        }
        indented_table(w, &rows)?;
        for p in &h.programs {
            if let Some(rules) = &p.firewall {
                writeln!(w, "  firewall {} hits:", p.prog_id)?;
                for r in rules {
                    let id = if r.id == 0 { "-".to_string() } else { r.id.to_string() };
                    writeln!(w, "    {id:>3}  {:<48} {}", r.rule, r.hits)?;
                }
            }
            if let Some(r) = &p.redirect {
                writeln!(
                    w,
                    "  redirect-peer {}: {} redirected, {} not matched",
                    p.prog_id, r.redirected, r.not_matched
                )?;
            }
        }
        if !h.run_time_stats {
            writeln!(w, "  (run counts need kernel stats: netkit stats --enable)")?;
        }
    }
    Ok(())
}

fn steps(w: &mut impl Write, steps: &[netkit::apply::StepView]) -> io::Result<()> {
    let rows: Vec<Vec<String>> =
        steps.iter().map(|s| vec![s.action.name().to_string(), s.object.clone(), s.detail.clone()]).collect();
    indented_table(w, &rows)
}

/// `netkit diff`: the steps in order, what stays, notes.
pub fn plan(w: &mut impl Write, p: &netkit::apply::Plan) -> io::Result<()> {
    if p.steps.is_empty() {
        writeln!(w, "no changes: the node is as the spec says")?;
    } else {
        writeln!(
            w,
            "{} change{}, in the order apply makes them:",
            p.steps.len(),
            if p.steps.len() == 1 { "" } else { "s" }
        )?;
        steps(w, &p.steps)?;
    }
    if !p.foreign.is_empty() {
        writeln!(w, "left alone (not apply's):")?;
        let rows: Vec<Vec<String>> = p
            .foreign
            .iter()
            .map(|f| {
                vec![
                    format!("{} {}", f.device, f.hook),
                    format!("#{}", f.position),
                    format!("program {}", f.prog_id),
                    f.link_id.map(|l| format!("link {l}")).unwrap_or_else(|| "plain".into()),
                ]
            })
            .collect();
        indented_table(w, &rows)?;
    }
    for n in &p.notes {
        writeln!(w, "note: {n}")?;
    }
    Ok(())
}

/// `netkit apply`: what was done.
pub fn report(w: &mut impl Write, r: &netkit::apply::Report) -> io::Result<()> {
    if r.steps.is_empty() {
        return writeln!(w, "no changes: the node is as the spec says");
    }
    writeln!(w, "{} change{} made:", r.steps.len(), if r.steps.len() == 1 { "" } else { "s" })?;
    steps(w, &r.steps)
}
