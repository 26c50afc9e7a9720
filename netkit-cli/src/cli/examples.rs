//! The EXAMPLES sections of `--help` and of the manual pages, one per
//! command that does something.

pub const PROBE: &str = "Examples:
  netkit probe                 what this kernel and process support, with hints
  netkit -j probe              the same as JSON";

pub const DEVICE_ADD: &str = "Examples:
  netkit device add nk-pod1 --peer eth0 --peer-netns pod1 --peer-policy drop --up
  netkit device add nk0 --mode l2 --scrub none --mtu 9000
  netkit device add nk-xdp --pairing single --up      one device, no peer (Linux >= 7.1)
  netkit device add pod3 --kind veth --peer eth0 --peer-netns pod3 --up   a veth pair";

pub const DEVICE_SET: &str = "Examples:
  netkit device set nk-pod1 --peer-policy pass
  netkit device set nk-pod2 --peer-address 02:00:00:00:01:12 --gso-ipv4-max-size 131072";

pub const DEVICE_DEL: &str = "Examples:
  netkit device del nk-pod1                  both ends go
  netkit -n pod1 device del eth0             named by the peer, from its namespace";

pub const DEVICE_LIST: &str = "Examples:
  netkit device list                         netkit and veth devices of this namespace
  netkit -n pod1 device list --all           every device of pod1";

pub const DEVICE_SHOW: &str = "Examples:
  netkit device show nk-pod1
  netkit -j device show nk-pod1";

pub const ATTACH: &str = "Examples:
  netkit attach nk-pod1 peer firewall --first --pin fw --set default=allow
  netkit attach nk-pod1 peer counter --after fw --pin count
  netkit attach eth0 ingress file:prog.o:my_prog --before prog:42 --expected-revision 7
  netkit attach eth0 ingress pass --plain     no link, as tc and bpftool attach";

pub const DETACH: &str = "Examples:
  netkit detach nk-pod1 peer count            a pinned link, by its name
  netkit detach eth0 ingress link:17
  netkit detach eth0 ingress --first          the plain program in the first slot";

pub const UPDATE: &str = "Examples:
  netkit update nk-pod1 peer fw firewall --set default=deny
  netkit update eth0 ingress link:17 file:new.o --expected-old prog:12";

pub const QUERY: &str = "Examples:
  netkit query                                every hook with programs
  netkit query nk-pod1                        both hooks of a device
  netkit -j query eth0 ingress";

pub const LINK_LIST: &str = "Examples:
  netkit link list                            the links this tool pinned
  netkit link list --all                      every tcx and netkit link, and what holds it";

pub const LINK_SHOW: &str = "Examples:
  netkit link show fw
  netkit link show link:17";

pub const LINK_PRUNE: &str = "Examples:
  netkit link prune                           unpin this tool's defunct links
  netkit link prune --all --force             others' pins of defunct links too";

pub const QUEUE_LEASE: &str = "Examples:
  netkit queue lease nk-xdp --from enp1s0f0 --queue 3";

pub const QUEUE_LIST: &str = "Examples:
  netkit queue list nk-xdp";

pub const RUN: &str = "Examples:
  netkit run eth0 ingress log                 attached until Ctrl-C, its log streamed
  netkit run nk-pod1 peer file:trace.o --first";

pub const PROG_LIST: &str = "Examples:
  netkit prog list
  netkit -j prog list";

pub const PROG_SHOW: &str = "Examples:
  netkit prog show 42";

pub const FIREWALL_ADD: &str = "Examples:
  netkit firewall add nk-pod1 peer dst 10.0.0.0/8 proto tcp port 80-443 deny
  netkit firewall add nk-pod1 peer src 192.168.1.0/24 allow
  netkit firewall add nk-pod1 peer link:17 dst fd00::/64 deny     on the firewall of link 17";

pub const FIREWALL_DEL: &str = "Examples:
  netkit firewall del nk-pod1 peer 1";

pub const FIREWALL_LIST: &str = "Examples:
  netkit firewall list nk-pod1 peer           rules by id, with hits and the default's";

pub const REDIRECT_ADD: &str = "Examples:
  netkit redirect add eth0 ingress 10.10.0.2 nk-pod1";

pub const REDIRECT_DEL: &str = "Examples:
  netkit redirect del eth0 ingress 10.10.0.2";

pub const REDIRECT_LIST: &str = "Examples:
  netkit redirect list eth0 ingress";

pub const STATS: &str = "Examples:
  netkit stats                                every hook with programs
  netkit stats nk-pod1 peer --enable --interval 2 --count 5
  netkit stats --format prometheus > /var/lib/node_exporter/textfile/netkit.prom";

pub const DIFF: &str = "Examples:
  netkit diff -f node.yaml                    exit 0: nothing to do, 2: changes, 1: error
  netkit -j diff -f node.yaml --prune";

pub const APPLY: &str = "Examples:
  netkit apply -f node.yaml
  netkit apply -f node.yaml --prune --jobs 16
  netkit -j apply --watch -f /etc/netkit/spec.yaml     re-apply on change, repair drift";

pub const EXPORT: &str = "Examples:
  netkit export > node.yaml                   apply of it changes nothing
  netkit -j export nk-pod1 nk-pod2";

pub const COMPLETIONS: &str = "Examples:
  source <(netkit completions bash)
  netkit completions bash > /usr/share/bash-completion/completions/netkit
  netkit completions zsh > /usr/local/share/zsh/site-functions/_netkit
  netkit completions fish > ~/.config/fish/completions/netkit.fish";

pub const LOGS: &str = "Examples:
  netkit logs eth0 ingress                    ends when the program leaves the hook
  netkit logs nk-pod1 peer link:17";

pub const METRICS: &str = "Examples:
  netkit metrics                              http://127.0.0.1:9475/metrics
  netkit metrics --listen 0.0.0.0:9475        for a scrape from another host
  netkit -n pod1 metrics --listen 127.0.0.1:9476";
