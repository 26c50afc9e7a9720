//! `cargo xtask demo`: the main job, in a VM on the newest kernel.

use std::{process::ExitCode, time::Duration};

use anyhow::Result;

use crate::{build, kernels, kernels::KernelSpec, setup, vm::Guest};

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Kernel to boot: a series (6.12, 6.18), `latest`, or a kernel image path.
    #[arg(long, default_value = "latest")]
    pub kernel: KernelSpec,
}

const SCRIPT: &str = r#"
set -e
say() { printf '\n### %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
in_pod() { nsenter --net=/run/netns/pod1 "$@"; }
pod_pings() { in_pod ping -c 1 -W 2 10.10.0.1 >/dev/null; }

say "What this kernel supports"
run netkit probe

say "A pod: its own network namespace behind a netkit pair"
# A node has devices before its pods: the pod's primary is not ifindex 2,
# while the pod's eth0 is (the first device of a fresh namespace).
netkit device add nk-node0 --peer nk-node1 >/dev/null
mkdir -p /run/netns && touch /run/netns/pod1
unshare -n sh -c 'mount --bind /proc/self/ns/net /run/netns/pod1'
in_pod ip link set lo up
# L3 mode (no ARP), the peer inside the pod, and peer policy drop: nothing
# leaves the pod until a program on the peer hook says so.
run netkit device add nk-pod1 --peer eth0 --peer-netns pod1 --mode l3 --peer-policy drop --up
ip addr add 10.10.0.1/32 dev nk-pod1
ip route add 10.10.0.2/32 dev nk-pod1
in_pod ip addr add 10.10.0.2/32 dev eth0
in_pod ip route add 10.10.0.1/32 dev eth0
in_pod ip route add default via 10.10.0.1 dev eth0
run netkit device list
run netkit -n pod1 device list

say "Peer policy drop: the pod cannot send"
if pod_pings; then echo "unexpected: the pod got out"; exit 1; fi
echo "ping from the pod: no reply (dropped by the peer policy)"

say "A firewall and a counter on the peer hook (what the pod sends), in that order"
run netkit attach nk-pod1 peer counter --pin count
run netkit attach nk-pod1 peer firewall --first --pin fw
run netkit query nk-pod1 peer
pod_pings && echo "ping from the pod: reply (the firewall's default allows, the counter passes it on)"

say "A rule, added live: no ICMP from the pod to the host"
run netkit firewall add nk-pod1 peer dst 10.10.0.1/32 proto icmp deny
if pod_pings; then echo "unexpected: ICMP got through"; exit 1; fi
echo "ping from the pod: no reply (denied by rule 1)"
run netkit firewall list nk-pod1 peer

say "The rule removed, live: traffic passes again"
run netkit firewall del nk-pod1 peer 1
pod_pings && echo "ping from the pod: reply"

say "The chain and what its programs counted"
run netkit query nk-pod1 peer
run netkit stats nk-pod1 peer
# Run counts and times while kernel BPF statistics are on (for this command only).
(sleep 0.5; pod_pings; pod_pings) &
run netkit stats --enable --interval 2 --count 1 nk-pod1 peer
wait

say "Deleting the pair leaves the pinned links defunct; prune removes them"
run netkit device del nk-pod1
run netkit link list
run netkit link prune
"#;

pub fn run(opts: &Options) -> Result<ExitCode> {
    setup::run(&setup::Options::default())?;
    let kernel = kernels::resolve(&opts.kernel, false)?;
    let bins = build::guest_binaries(false)?;
    let outcome = Guest::new(&kernel, &bins)?.script(SCRIPT).timeout(Duration::from_secs(600)).boot(&mut |_| {})?;
    if outcome.exit_code != 0 {
        anyhow::bail!("the demo failed in the guest (exit code {})", outcome.exit_code);
    }
    println!("demo: done (kernel {}, {})", outcome.kernel_release, outcome.accel);
    Ok(ExitCode::SUCCESS)
}
