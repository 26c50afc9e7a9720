//! Human tables and JSON, written to any `impl Write` so tests can read them.

use std::io::{self, Write};

use serde::Serialize;

use crate::probe::{Report, Support};

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
    ];
    for (k, v) in rows {
        writeln!(w, "{k:<14} {v}")?;
    }
    Ok(())
}
