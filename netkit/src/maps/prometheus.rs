//! The programs' numbers in the Prometheus text exposition format (0.0.4):
//! `netkit_` metrics, `_total` counters in base units (seconds, bytes), one
//! series per program on a hook, labelled with the namespace, device, hook,
//! position, program id and name; firewall hits per rule, redirect counters.
//! What `netkit stats --format prometheus` prints and `netkit metrics`
//! serves, for node_exporter's textfile collector or a scrape.

use std::fmt::Write as _;

use super::stats::{HookStats, ProgStats};

/// One metric family: its samples are added, then it is written once.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Vec<(String, String)>,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Self {
        Self { name, help, kind, samples: Vec::new() }
    }

    fn add(&mut self, labels: &str, value: impl std::fmt::Display) {
        self.samples.push((labels.to_string(), value.to_string()));
    }

    fn write(&self, out: &mut String) {
        if self.samples.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (labels, value) in &self.samples {
            let _ = writeln!(out, "{}{{{labels}}} {value}", self.name);
        }
    }
}

/// A label value as the format wants it: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect::<Vec<_>>().join(",")
}

/// The exposition text of `hooks` in namespace `netns`, where `defunct`
/// links this tool pinned are on no hook (their programs run nowhere and
/// have no series: the gauge is what shows they went).
pub fn exposition(hooks: &[HookStats], netns: &str, defunct: usize) -> String {
    let mut gone = Family::new(
        "netkit_defunct_links",
        "gauge",
        "Links this tool pinned that are on no hook (detached by another tool, or their device deleted); apply repairs its own, `netkit link prune` removes them.",
    );
    gone.add(&labels(&[("netns", netns)]), defunct);
    let mut programs = Family::new("netkit_hook_programs", "gauge", "Programs attached to the hook.");
    let mut stats_on = Family::new(
        "netkit_run_time_stats_enabled",
        "gauge",
        "1 while kernel BPF run-time statistics are on (run count and time are counted only then).",
    );
    let mut runs = Family::new(
        "netkit_program_runs_total",
        "counter",
        "Times the kernel ran the program while run-time statistics were on.",
    );
    let mut run_time = Family::new(
        "netkit_program_run_time_seconds_total",
        "counter",
        "Time the program ran while run-time statistics were on.",
    );
    let mut packets = Family::new("netkit_program_packets_total", "counter", "Packets counted by a counter program.");
    let mut bytes = Family::new("netkit_program_bytes_total", "counter", "Bytes counted by a counter program.");
    let mut hits = Family::new(
        "netkit_firewall_rule_hits_total",
        "counter",
        "Packets a firewall rule decided (rule_id 0: the default action).",
    );
    let mut redirected =
        Family::new("netkit_redirect_packets_total", "counter", "Packets a redirect-peer program sent to a pod.");
    let mut unmatched = Family::new(
        "netkit_redirect_unmatched_packets_total",
        "counter",
        "Packets a redirect-peer program found no entry for.",
    );
    let any_stats = hooks.iter().any(|h| h.run_time_stats);
    stats_on.add(&labels(&[("netns", netns)]), u8::from(any_stats));
    for h in hooks {
        let hook = h.hook.to_string();
        programs.add(&labels(&[("netns", netns), ("device", &h.ifname), ("hook", &hook)]), h.programs.len());
        for p in &h.programs {
            let position = p.position.to_string();
            let id = p.prog_id.to_string();
            let base = [
                ("netns", netns),
                ("device", h.ifname.as_str()),
                ("hook", hook.as_str()),
                ("position", position.as_str()),
                ("prog_id", id.as_str()),
                ("prog_name", p.name.as_str()),
            ];
            let l = labels(&base);
            if h.run_time_stats || p.run_cnt > 0 {
                runs.add(&l, p.run_cnt);
                run_time.add(&l, seconds(p));
            }
            if let Some(n) = p.packets {
                packets.add(&l, n);
            }
            if let Some(n) = p.bytes {
                bytes.add(&l, n);
            }
            for rule in p.firewall.iter().flatten() {
                let rule_id = rule.id.to_string();
                let mut with = base.to_vec();
                with.push(("rule_id", &rule_id));
                with.push(("rule", &rule.rule));
                hits.add(&labels(&with), rule.hits);
            }
            if let Some(r) = &p.redirect {
                redirected.add(&l, r.redirected);
                unmatched.add(&l, r.not_matched);
            }
        }
    }
    let mut out = String::new();
    for f in [&stats_on, &programs, &runs, &run_time, &packets, &bytes, &hits, &redirected, &unmatched, &gone] {
        f.write(&mut out);
    }
    out
}

fn seconds(p: &ProgStats) -> String {
    // Nanoseconds as seconds without losing digits to a float.
    format!("{}.{:09}", p.run_time_ns / 1_000_000_000, p.run_time_ns % 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{maps::firewall::RuleView, mprog::Hook};

    #[test]
    fn labels_are_escaped_and_counters_end_in_total() {
        let hooks = vec![HookStats {
            ifname: "eth0".into(),
            ifindex: 2,
            hook: Hook::Ingress,
            run_time_stats: true,
            programs: vec![ProgStats {
                position: 1,
                prog_id: 7,
                name: "firewall".into(),
                run_cnt: 3,
                run_time_ns: 1_500_000_001,
                firewall: Some(vec![RuleView { id: 1, rule: "src \"x\\y deny".into(), hits: 2 }]),
                ..ProgStats::default()
            }],
        }];
        let text = exposition(&hooks, "default", 1);
        assert!(text.contains("netkit_defunct_links{netns=\"default\"} 1"), "{text}");
        assert!(text.contains("netkit_program_run_time_seconds_total{netns=\"default\",device=\"eth0\",hook=\"ingress\",position=\"1\",prog_id=\"7\",prog_name=\"firewall\"} 1.500000001"), "{text}");
        assert!(text.contains(r#"rule="src \"x\\y deny"} 2"#), "{text}");
        for line in text.lines().filter(|l| l.starts_with("# TYPE") && l.ends_with("counter")) {
            assert!(line.split(' ').nth(2).unwrap().ends_with("_total"), "{line}");
        }
    }
}
