//! The programs' numbers as Prometheus metrics: `netkit stats --format
//! prometheus` with a counter and a firewall on tcx ingress (veth, on the
//! host and in the VM), after real traffic, checked by promtool
//! (`NETKIT_TEST_PROMTOOL`: Debian's, fetched by `cargo xtask setup`, also
//! in the guest) and against the counts sent; and `netkit metrics` over
//! HTTP while traffic flows.

mod common;

use std::{
    io::Write as _,
    process::{Command, Stdio},
};

use common::hooks::HookEnv;
use netkit::mprog::Hook;

fn promtool() -> Option<String> {
    std::env::var("NETKIT_TEST_PROMTOOL").ok().filter(|p| std::path::Path::new(p).is_file())
}

/// The value of the one sample of `metric` whose labels contain every `with`.
fn sample(text: &str, metric: &str, with: &[&str]) -> f64 {
    let found: Vec<&str> =
        text.lines().filter(|l| l.starts_with(&format!("{metric}{{")) && with.iter().all(|w| l.contains(w))).collect();
    assert_eq!(found.len(), 1, "{metric} {with:?} in:\n{text}");
    found[0].rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn stats_in_the_exposition_format_pass_promtool_and_count_the_traffic() {
    require_root!();
    let env = HookEnv::tcx_with("prom", false);
    env.attach(Hook::Ingress, "counter", &["--pin", "count"]);
    env.attach(Hook::Ingress, "firewall", &["--pin", "fw"]);
    env.ok(&["firewall", "add", "dev0", "ingress", "dst", "10.99.99.0/24", "deny"]);
    let sent = 5;
    for _ in 0..sent {
        assert!(env.traffic(Hook::Ingress), "the pod's packets reach the host");
    }
    let text = env.ok(&["stats", "--format", "prometheus"]);

    match promtool() {
        Some(promtool) => {
            let mut child = Command::new(&promtool)
                .args(["check", "metrics"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
            let o = child.wait_with_output().unwrap();
            assert!(
                o.status.success() && o.stdout.is_empty() && o.stderr.is_empty(),
                "promtool check metrics: {}{}\n{text}",
                common::stdout(&o),
                common::stderr(&o)
            );
        }
        None => common::skip(
            "no promtool (NETKIT_TEST_PROMTOOL, set by cargo xtask test and in its VM): format not checked by it",
        ),
    }
    let ns = format!("netns=\"{}\"", env.ns.name);
    let here = [ns.as_str(), "device=\"dev0\"", "hook=\"ingress\""];
    // The counter saw at least what was sent (and the datagrams' replies
    // and neighbour traffic, not more than a few).
    let mut counter = here.to_vec();
    counter.extend(["position=\"1\"", "prog_name=\"counter\""]);
    let packets = sample(&text, "netkit_program_packets_total", &counter);
    assert!(packets >= sent as f64, "{packets} packets counted, {sent} sent");
    assert!(sample(&text, "netkit_program_bytes_total", &counter) >= packets * 42.0);
    // The firewall: its rule (no hits: nothing went there) and its default.
    let mut rule = here.to_vec();
    rule.extend(["position=\"2\"", "rule_id=\"1\"", "rule=\"dst 10.99.99.0/24 deny\""]);
    assert_eq!(sample(&text, "netkit_firewall_rule_hits_total", &rule), 0.0);
    let mut default = here.to_vec();
    default.push("rule_id=\"0\"");
    assert!(sample(&text, "netkit_firewall_rule_hits_total", &default) >= sent as f64);
    assert_eq!(sample(&text, "netkit_hook_programs", &here), 2.0);
    assert_eq!(sample(&text, "netkit_defunct_links", &[ns.as_str()]), 0.0);

    // -j and --format prometheus together are refused.
    let err = env.fails(&["-j", "stats", "--format", "prometheus"]);
    assert!(err.contains("two formats"), "{err}");
}

/// One HTTP/1.1 exchange with the server at `addr`, from inside `ns` (it
/// listens in that namespace): the status code and the body.
fn http(ns: &common::TestNs, addr: std::net::SocketAddr, request: String) -> (u16, String) {
    ns.within(move || {
        use std::io::Read as _;
        let mut s = std::net::TcpStream::connect(addr).expect("connecting to netkit metrics");
        s.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (status, body)
    })
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n")
}

/// The metric names and label sets of an exposition, values left out.
fn series(text: &str) -> Vec<String> {
    let mut s: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, _)| k.into())
        .collect();
    s.sort();
    s
}

#[test]
fn the_http_endpoint_serves_the_same_series_and_counters_rise() {
    require_root!();
    let env = HookEnv::tcx_with("promh", false);
    env.attach(Hook::Ingress, "counter", &["--pin", "count"]);
    let mut server = env
        .command(&["metrics", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("netkit metrics starts");
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(server.stderr.take().unwrap()), &mut first).unwrap();
    let addr: std::net::SocketAddr = first
        .strip_prefix("serving http://")
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {first:?}"));

    // A client that sends half a request and waits holds up no scrape.
    let stalled = env.ns.within(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: n").unwrap();
        s
    });
    let (status, before) = http(&env.ns, addr, get("/metrics"));
    assert_eq!(status, 200, "{before}");
    let counted = |text: &str| sample(text, "netkit_program_packets_total", &["prog_name=\"counter\""]);
    for _ in 0..5 {
        assert!(env.traffic(Hook::Ingress));
    }
    let (_, after) = http(&env.ns, addr, get("/metrics"));
    assert!(counted(&after) >= counted(&before) + 5.0, "the counter did not rise: {before} then {after}");
    // The same series as the command prints.
    assert_eq!(series(&after), series(&env.ok(&["stats", "--format", "prometheus"])));

    // Another tool detaches the counter's link: its series go, the gauge
    // of defunct links shows it.
    let link = env.chain(Hook::Ingress).1[0].link.unwrap();
    common::witness::detach_link(link);
    let (_, now) = http(&env.ns, addr, get("/metrics"));
    assert_eq!(sample(&now, "netkit_defunct_links", &[]), 1.0, "{now}");
    assert!(!now.contains("netkit_program_packets_total"), "{now}");

    // Bad requests get an answer, and the server keeps serving.
    assert_eq!(http(&env.ns, addr, get("/nope")).0, 404);
    assert_eq!(
        http(
            &env.ns,
            addr,
            "POST /metrics HTTP/1.1\r\nHost: n\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
        )
        .0,
        405
    );
    let huge = format!("GET /metrics HTTP/1.1\r\nHost: n\r\nX-Fill: {}\r\n\r\n", "a".repeat(64 * 1024));
    let (status, _) = http(&env.ns, addr, huge);
    assert!(status == 431 || status == 0, "an oversized request got {status}");
    assert_eq!(http(&env.ns, addr, "garbage\r\n\r\n".into()).0, 400);
    assert_eq!(http(&env.ns, addr, get("/metrics")).0, 200, "the server stopped serving after bad requests");
    drop(stalled);

    // SIGTERM ends it cleanly.
    // SAFETY: kill(2) with the pid of a child this test started and has not reaped.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let status = server.wait().unwrap();
    assert!(status.success(), "netkit metrics exited with {status}");
}
