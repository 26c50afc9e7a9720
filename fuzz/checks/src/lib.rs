//! The checks behind the fuzz targets in `fuzz/` (`cargo xtask fuzz`): each
//! takes arbitrary bytes, runs one parser of untrusted input the way the tool
//! does, up to the point a kernel would be called, and panics only when an
//! invariant breaks. The seeds and every input that once broke a check run
//! as this crate's unit test.

use std::{borrow::Cow, collections::BTreeSet, path::Path, str::FromStr as _};

use netkit::{
    apply::{Action, ApplyError, PlanOptions, spec},
    cni::{self, config},
    fuzzing as internal,
    hooks::refs::RefSpec,
    maps::firewall::Rule,
    mprog::Hook,
    netlink::{ifname, links::Policy},
    programs::{self, ProgSpec},
};

/// One target's check: arbitrary bytes in, a panic when an invariant breaks.
pub type Check = fn(&[u8]);

/// The fuzz targets, by name, as `cargo xtask fuzz` runs them.
pub const TARGETS: &[(&str, Check)] =
    &[("object", object), ("rule", rule), ("reference", reference), ("spec", spec), ("cni", cni)];

/// A user's object file: the ELF checks and the section rewrite, then aya's
/// parse, the choice of function and of loader, and for the lean loader its
/// preparation of each program up to the first system call. The rewrite may change only
/// the names of the renamed sections, where the section-name table and .BTF
/// are, and the section names inside .BTF.ext; everything else stays.
pub fn object(data: &[u8]) {
    let Ok(out) = internal::normalize_object("fuzz.o", data) else { return };
    if let Cow::Owned(out) = &out {
        check_rewrite(data, out);
    }
    if let Ok(progs) = internal::inspect("fuzz.o", &out) {
        let _ = internal::pick_function("fuzz.o", &progs, None);
        if let Some((name, ..)) = progs.first() {
            let _ = internal::pick_function("fuzz.o", &progs, Some(name));
        }
    }
    let Ok(obj) = internal::parse_object(&out) else { return };
    if internal::needs_aya(&obj).is_some() {
        return;
    }
    // What the lean loader does before its first system call, for a few of
    // the object's programs: globals, BTF fix-up, relocation, instructions.
    for function in obj.programs.keys().take(4) {
        let _ = programs::image(&out, function, &[], 100);
    }
}

/// One section header: (header offset, name, flags, offset, size).
type Section = (usize, String, u64, u64, u64);

/// The section headers of an ELF64 image, read independently of the code
/// under test: the index of the section-name table, and per section (header
/// offset, name, flags, offset, size).
fn sections(data: &[u8]) -> (usize, Vec<Section>) {
    let le = data[5] == 1;
    let u = |at: usize, n: usize| -> u64 {
        let b = &data[at..at + n];
        let mut v = 0u64;
        for i in 0..n {
            let byte = if le { b[n - 1 - i] } else { b[i] };
            v = v << 8 | u64::from(byte);
        }
        v
    };
    let (shoff, shentsize, shnum, shstrndx) =
        (u(0x28, 8) as usize, u(0x3a, 2) as usize, u(0x3c, 2) as usize, u(0x3e, 2) as usize);
    let header = |i: usize| shoff + i * shentsize;
    let (str_off, str_size) = (u(header(shstrndx) + 24, 8) as usize, u(header(shstrndx) + 32, 8) as usize);
    let strtab = &data[str_off..str_off + str_size];
    let all = (0..shnum)
        .map(|i| {
            let h = header(i);
            let at = u(h, 4) as usize;
            let rest = &strtab[at..];
            let name = String::from_utf8_lossy(&rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]);
            (h, name.into_owned(), u(h + 8, 8), u(h + 24, 8), u(h + 32, 8))
        })
        .collect();
    (shstrndx, all)
}

fn check_rewrite(data: &[u8], out: &[u8]) {
    assert!(out.len() >= data.len(), "the rewrite shortened the object");
    let ((shstrndx, before), (_, after)) = (sections(data), sections(out));
    assert_eq!(before.len(), after.len(), "the rewrite changed the number of sections");
    let mut may_change: BTreeSet<usize> = BTreeSet::new();
    for (i, (old, new)) in before.iter().zip(&after).enumerate() {
        let alias = internal::classifier_alias(&old.1).filter(|_| old.2 & 0x4 != 0);
        match &alias {
            Some(alias) => {
                assert_eq!(&new.1, alias, "section {} renamed to {} instead", old.1, new.1);
                may_change.extend(old.0..old.0 + 4);
            }
            None => assert_eq!(new.1, old.1, "section {} renamed though it is no libbpf classifier name", old.1),
        }
        if i == shstrndx || old.1 == ".BTF" {
            may_change.extend(old.0 + 24..old.0 + 40);
        } else {
            assert_eq!((new.3, new.4), (old.3, old.4), "section {} moved", old.1);
        }
        if old.1 == ".BTF.ext" {
            // Its header may hold any numbers when the object has no .BTF
            // (then it is left alone): only bytes inside the file count.
            let end = old.3.saturating_add(old.4).min(data.len() as u64);
            may_change.extend(old.3 as usize..end as usize);
        }
    }
    for (at, (a, b)) in data.iter().zip(out).enumerate() {
        assert!(
            a == b || may_change.contains(&at),
            "the rewrite changed byte {at:#x}, outside the names it may change"
        );
    }
}

/// A firewall rule: one that parses prints back to a rule that parses to the
/// same value, and survives the kernel map's entry format unchanged.
pub fn rule(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    let Ok(rule) = Rule::parse(&words) else { return };
    let printed = rule.to_string();
    let words: Vec<String> = printed.split_whitespace().map(str::to_string).collect();
    match Rule::parse(&words) {
        Ok(again) => assert_eq!(again, rule, "{text:?} printed as {printed:?} reads back differently"),
        Err(e) => panic!("{text:?} printed as {printed:?}, which does not parse: {e}"),
    }
    assert_eq!(internal::rule_through_entry(&rule), rule, "{text:?} changes through the map's entry format");
}

/// REF and PROG arguments, and hook names: what parses prints back to the
/// same value.
pub fn reference(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(r) = RefSpec::from_str(text) {
        let printed = r.to_string();
        assert_eq!(RefSpec::from_str(&printed).ok(), Some(r), "REF {text:?} printed as {printed:?}");
    }
    if let Ok(p) = ProgSpec::from_str(text) {
        let printed = p.to_string();
        assert_eq!(ProgSpec::from_str(&printed).ok(), Some(p), "PROG {text:?} printed as {printed:?}");
    }
    if let Ok(h) = Hook::from_str(text) {
        assert_eq!(Hook::from_str(h.name()).ok(), Some(h), "hook {text:?}");
    }
}

/// An apply spec: parse, validation and planning. A spec that validates
/// prints as YAML that reads back to a valid spec printing the same, and
/// plans against an empty node: without error when it needs nothing the
/// node lacks (its chains and redirect entries name only pairs it declares,
/// it names no pinned program and puts no peer in another namespace), as one create per pair and one attach
/// per program; otherwise blocked, never failed.
pub fn spec(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(doc) = spec::parse_doc("fuzz.yaml", text) else { return };
    let Ok(valid) = spec::validate("fuzz.yaml", &doc) else { return };
    plans_on_empty(&valid);
    let printed = spec::to_yaml(&doc);
    let again = spec::parse_doc("printed.yaml", &printed)
        .unwrap_or_else(|e| panic!("a valid spec printed as\n{printed}\ndoes not read back: {e}"));
    if let Err(e) = spec::validate("printed.yaml", &again) {
        panic!("a valid spec printed as\n{printed}\nno longer validates: {e}");
    }
    assert_eq!(spec::to_yaml(&again), printed, "printing a spec read back from its own print changed it");
}

fn plans_on_empty(spec: &spec::Spec) {
    let managed = || {
        spec.chains.iter().flat_map(|c| &c.entries).filter_map(|e| match e {
            spec::Entry::Managed(m) => Some(m),
            spec::Entry::Foreign { .. } => None,
        })
    };
    let declared = |name: &String| spec.pair(name).is_some();
    let contained = spec.pairs.iter().all(|p| p.spec.peer_netns.is_none())
        && spec.chains.iter().all(|c| declared(&c.device))
        && managed().all(|m| !matches!(m.prog, ProgSpec::Pinned(_)))
        && managed().flat_map(|m| m.entries.iter().flat_map(|e| e.values())).all(declared);
    let opts = PlanOptions { prune: true, recreate: true, adopt: true, full: false };
    match (internal::plan_on_empty(spec, opts), contained) {
        (Ok(plan), true) => {
            let actions: Vec<Action> = plan.steps.iter().map(|s| s.action).collect();
            let mut want = vec![Action::Create; spec.pairs.len()];
            want.extend(managed().map(|_| Action::Attach));
            assert_eq!(actions, want, "planned on an empty node: {:?}", plan.steps);
            let created: Vec<String> = spec.pairs.iter().map(|p| format!("pair {}", p.spec.name)).collect();
            let objects: Vec<&String> = plan.steps.iter().map(|s| &s.object).collect();
            assert!(objects.starts_with(&created.iter().collect::<Vec<_>>()), "pairs created: {objects:?}");
            assert!(plan.foreign.is_empty(), "foreign programs on an empty node: {:?}", plan.foreign);
            let refs = spec.chains.iter().flat_map(|c| &c.entries).filter(|e| matches!(e, spec::Entry::Foreign { .. }));
            assert_eq!(plan.notes.len(), refs.count(), "notes on an empty node: {:?}", plan.notes);
        }
        (Err(ApplyError::Blocked(_)), false) => {}
        (Err(e), true) => panic!("a spec that needs nothing the empty node lacks does not plan: {e}"),
        (Ok(plan), false) => panic!("a spec that needs what the empty node lacks plans: {:?}", plan.steps),
        (Err(e), false) => panic!("planning on an empty node failed instead of being blocked: {e}"),
    }
}

/// The CNI plugin's input: the first line holds CNI_COMMAND, CNI_IFNAME,
/// CNI_CONTAINERID and CNI_NETNS (separated by spaces), the rest is standard
/// input. VERSION runs whole; for the others, the configuration is parsed as
/// ADD and as DEL would, and an ADD's attachment spec is built. What ADD
/// accepts DEL accepts; an accepted configuration with a valid environment
/// always gives a valid spec; every error is a CNI error object.
pub fn cni(data: &[u8]) {
    let (head, stdin) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut words = head.split(' ');
    let mut next = || words.next().unwrap_or_default().to_string();
    let env = cni::Env {
        command: next(),
        ifname: next(),
        container_id: next(),
        netns: next(),
        args: String::new(),
        path: String::new(),
    };
    if env.command == "VERSION" {
        let out = cni::run(&env, stdin);
        assert!(out.ok, "VERSION failed: {}", out.stdout);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("VERSION's answer is JSON");
        assert!(v["supportedVersions"].is_array(), "VERSION's answer: {v}");
        return;
    }
    let error_object = |e: &cni::CniError| {
        let v: serde_json::Value = serde_json::to_value(e).expect("an error serializes");
        assert!(v["code"].is_u64() && v["msg"].is_string(), "not a CNI error object: {v}");
    };
    let add = config::parse(stdin, true);
    let del = config::parse(stdin, false);
    if let Err(e) = &add {
        error_object(e);
    }
    if let Err(e) = &del {
        error_object(e);
    }
    if add.is_ok()
        && let Err(e) = &del
    {
        panic!("ADD accepts the configuration, DEL refuses it: {e:?}");
    }
    let Ok(conf) = add else { return };
    match env.require(true) {
        Err(e) => error_object(&e),
        Ok(()) => {
            let host = internal::host_name(&env.container_id, &env.ifname, 0);
            assert!(ifname::check(&host).is_ok(), "host name {host} is no valid device name");
            if let Err(e) = conf.spec(&host, &env.ifname, Path::new(&env.netns), Policy::Drop) {
                panic!("an accepted configuration gives no valid spec for {env:?}: {e:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every seed of every target and every input that once broke one (the
    /// files under fuzz/seeds/TARGET and fuzz/regressions/TARGET) passes.
    #[test]
    fn seeds_and_regressions_pass() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut ran = 0;
        for (name, check) in TARGETS {
            for dir in ["seeds", "regressions"] {
                let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else { continue };
                for entry in entries {
                    let path = entry.unwrap().path();
                    let data = std::fs::read(&path).unwrap();
                    if let Err(e) = std::panic::catch_unwind(|| check(&data)) {
                        let why = e.downcast_ref::<String>().cloned().unwrap_or_default();
                        panic!("{name} fails on {}: {why}", path.display());
                    }
                    ran += 1;
                }
            }
        }
        assert!(ran >= TARGETS.len(), "no seeds found under {}", root.display());
    }
}
