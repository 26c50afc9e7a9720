// The least a process can do for what `netkit device list`, `netkit query`
// and `netkit attach` do: the same rtnetlink and bpf requests, from a
// static C binary with no runtime, no argument parser and no checks beyond
// the errors. The startup suite of `cargo xtask bench` sets its CPU time
// per process beside netkit's.
//
//   startup device-list [all]
//   startup pairs
//   startup query DEV HOOK BPFFS NETNS
//   startup attach DEV HOOK RECIPE PIN
//
// The kernel headers of the build machine may predate tcx and netkit, so
// the attach types and the attr layouts of the newer commands are spelled
// out here (include/uapi/linux/bpf.h).
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

enum { TCX_INGRESS = 46, TCX_EGRESS = 47, NETKIT_PRIMARY = 54, NETKIT_PEER = 55 };

struct query_attr {
	uint32_t target_ifindex, attach_type, query_flags, attach_flags;
	uint64_t prog_ids;
	uint32_t count, pad;
	uint64_t prog_attach_flags, link_ids, link_attach_flags, revision;
};

struct link_create_attr {
	uint32_t prog_fd, target_ifindex, attach_type, flags;
	uint32_t relative_fd, pad;
	uint64_t expected_revision;
};

union attr {
	union bpf_attr bpf;
	struct query_attr query;
	struct link_create_attr link;
	char bytes[160];
};

static long sys_bpf(int cmd, union attr *a)
{
	return syscall(SYS_bpf, cmd, a, sizeof(*a));
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static int hook_type(const char *hook)
{
	if (!strcmp(hook, "ingress"))
		return TCX_INGRESS;
	if (!strcmp(hook, "egress"))
		return TCX_EGRESS;
	if (!strcmp(hook, "primary"))
		return NETKIT_PRIMARY;
	if (!strcmp(hook, "peer"))
		return NETKIT_PEER;
	fprintf(stderr, "unknown hook %s\n", hook);
	exit(2);
}

// ---------------------------------------------------------------- rtnetlink

struct link {
	int index, peer, netkit, primary, peer_nsid;
	char name[16];
};

static char nlbuf[1 << 16];

static void parse_link(struct nlmsghdr *h, struct link *out)
{
	struct ifinfomsg *ifi = NLMSG_DATA(h);
	int len = IFLA_PAYLOAD(h);

	memset(out, 0, sizeof(*out));
	out->index = ifi->ifi_index;
	out->peer_nsid = -1;
	for (struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type == IFLA_IFNAME)
			snprintf(out->name, sizeof(out->name), "%s", (char *)RTA_DATA(a));
		else if (a->rta_type == IFLA_LINK)
			out->peer = *(int *)RTA_DATA(a);
		else if (a->rta_type == IFLA_LINK_NETNSID)
			out->peer_nsid = *(int *)RTA_DATA(a);
		else if (a->rta_type == IFLA_LINKINFO) {
			int ilen = RTA_PAYLOAD(a);
			for (struct rtattr *i = RTA_DATA(a); RTA_OK(i, ilen); i = RTA_NEXT(i, ilen)) {
				if (i->rta_type == IFLA_INFO_KIND && !strcmp(RTA_DATA(i), "netkit"))
					out->netkit = 1;
				if (i->rta_type != IFLA_INFO_DATA)
					continue;
				int dlen = RTA_PAYLOAD(i);
				for (struct rtattr *d = RTA_DATA(i); RTA_OK(d, dlen); d = RTA_NEXT(d, dlen))
					if (d->rta_type == 2 /* IFLA_NETKIT_PRIMARY */)
						out->primary = *(uint8_t *)RTA_DATA(d);
			}
		}
	}
}

// Appends attribute `type` with `len` bytes of `data` to request `h`.
static void put_attr(void *msg, int type, const void *data, int len)
{
	struct nlmsghdr *h = msg;
	struct rtattr *a = (void *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));
	a->rta_type = type;
	a->rta_len = RTA_LENGTH(len);
	memcpy(RTA_DATA(a), data, len);
	h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
}

// One RTM_GETLINK: by index, by name, or a dump (index 0, no name); with
// nsid >= 0, of the namespace this one calls so (IFLA_TARGET_NETNSID).
// Returns how many links it stored in out (at most max).
static int getlink_in(int s, int nsid, int index, const char *name, struct link *out, int max)
{
	struct {
		struct nlmsghdr h;
		struct ifinfomsg i;
		char attrs[64];
	} req;
	int dump = !index && !name, n = 0;

	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = NLMSG_LENGTH(sizeof(req.i));
	req.h.nlmsg_type = RTM_GETLINK;
	req.h.nlmsg_flags = NLM_F_REQUEST | (dump ? NLM_F_DUMP : 0);
	req.i.ifi_index = index;
	if (name)
		put_attr(&req, IFLA_IFNAME, name, strlen(name) + 1);
	if (nsid >= 0)
		put_attr(&req, 46 /* IFLA_TARGET_NETNSID */, &nsid, sizeof(nsid));
	if (send(s, &req, req.h.nlmsg_len, 0) < 0)
		die("send");
	for (;;) {
		int len = recv(s, nlbuf, sizeof(nlbuf), 0);
		if (len < 0)
			die("recv");
		for (struct nlmsghdr *h = (void *)nlbuf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
			if (h->nlmsg_type == NLMSG_DONE)
				return n;
			if (h->nlmsg_type == NLMSG_ERROR) {
				errno = -((struct nlmsgerr *)NLMSG_DATA(h))->error;
				die("RTM_GETLINK");
			}
			if (n < max)
				parse_link(h, &out[n++]);
			if (!dump)
				return n;
		}
	}
}

static int getlink(int s, int index, const char *name, struct link *out, int max)
{
	return getlink_in(s, -1, index, name, out, max);
}

// The nsid this namespace gives the namespace of `fd` (RTM_GETNSID), or -1.
static int getnsid(int s, int fd)
{
	struct {
		struct nlmsghdr h;
		struct rtgenmsg g;
		char pad[3];
		char attrs[16];
	} req;

	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtgenmsg));
	req.h.nlmsg_type = RTM_GETNSID;
	req.h.nlmsg_flags = NLM_F_REQUEST;
	put_attr(&req, 3 /* NETNSA_FD */, &fd, sizeof(fd));
	if (send(s, &req, req.h.nlmsg_len, 0) < 0)
		die("send");
	int len = recv(s, nlbuf, sizeof(nlbuf), 0);
	if (len < 0)
		die("recv");
	struct nlmsghdr *h = (void *)nlbuf;
	if (!NLMSG_OK(h, len) || h->nlmsg_type != RTM_NEWNSID)
		return -1;
	int alen = h->nlmsg_len - NLMSG_LENGTH(sizeof(struct rtgenmsg));
	for (struct rtattr *a = (void *)((char *)NLMSG_DATA(h) + NLMSG_ALIGN(sizeof(struct rtgenmsg))); RTA_OK(a, alen);
	     a = RTA_NEXT(a, alen))
		if (a->rta_type == 1 /* NETNSA_NSID */)
			return *(int *)RTA_DATA(a);
	return -1;
}

static int rtnl(void)
{
	int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (s < 0)
		die("socket");
	return s;
}

// ---------------------------------------------------------------- bpf

static uint32_t count_on(int ifindex, int type)
{
	union attr a;

	memset(&a, 0, sizeof(a));
	a.query.target_ifindex = ifindex;
	a.query.attach_type = type;
	if (sys_bpf(BPF_PROG_QUERY, &a) < 0)
		die("BPF_PROG_QUERY");
	return a.query.count;
}

// The netkit devices (every device with `all`) with their other end and
// the program counts of the pair's hooks.
static int device_list(int all)
{
	static struct link links[1024];
	struct link other;
	int s = rtnl(), n = getlink(s, 0, NULL, links, 1024);

	for (int i = 0; i < n; i++) {
		struct link *l = &links[i];
		int j;
		if (!l->netkit) {
			if (all)
				printf("%s %d\n", l->name, l->index);
			continue;
		}
		// The other end: among the links just read, or asked for.
		for (j = 0; j < n && links[j].index != l->peer; j++)
			;
		if (j < n)
			other = links[j];
		else
			getlink(s, l->peer, NULL, &other, 1);
		int primary = l->primary ? l->index : other.index;
		printf("%s %d %s %s %u/%u\n", l->name, l->index, l->primary ? "primary" : "peer", other.name,
		       count_on(primary, NETKIT_PRIMARY), count_on(primary, NETKIT_PEER));
	}
	return 0;
}

// The pair ends here with the other end's name and namespace: one dump,
// the nsid of each /run/netns namespace, and one read of each other end in
// its namespace by nsid. The least work `device list` can do for what it
// shows (it also names namespaces that only a process is in).
static int pairs(void)
{
	static struct link links[4096];
	static char names[4096][256];
	static int ids[4096];
	struct link other;
	int s = rtnl(), n = getlink(s, 0, NULL, links, 4096), named = 0;
	DIR *dir = opendir("/run/netns");

	for (struct dirent *e; dir && named < 4096 && (e = readdir(dir));) {
		if (e->d_name[0] == '.')
			continue;
		char path[300];
		snprintf(path, sizeof(path), "/run/netns/%s", e->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ids[named] = getnsid(s, fd);
		snprintf(names[named++], sizeof(names[0]), "%s", e->d_name);
		close(fd);
	}
	for (int i = 0; i < n; i++) {
		struct link *l = &links[i];
		const char *ns = "";
		if (!l->peer)
			continue;
		other.name[0] = 0;
		if (l->peer_nsid >= 0) {
			for (int j = 0; j < named; j++)
				if (ids[j] == l->peer_nsid)
					ns = names[j];
			getlink_in(s, l->peer_nsid, l->peer, NULL, &other, 1);
		} else {
			getlink(s, l->peer, NULL, &other, 1);
		}
		printf("%s %d %s@%s\n", l->name, l->index, other.name, ns);
	}
	return 0;
}

static void obj_info(int fd, void *info, uint32_t len)
{
	union attr a;

	memset(&a, 0, sizeof(a));
	a.bpf.info.bpf_fd = fd;
	a.bpf.info.info_len = len;
	a.bpf.info.info = (uintptr_t)info;
	if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) < 0)
		die("BPF_OBJ_GET_INFO_BY_FD");
}

static int query(const char *dev, const char *hook, const char *bpffs, const char *ns)
{
	static const char *hooks[] = { "ingress", "egress", "primary", "peer" };
	struct link l;
	uint32_t progs[64], links[64];
	union attr a;
	int s = rtnl();

	getlink(s, 0, dev, &l, 1);
	// The pins of every hook of the device (the links this tool owns).
	for (int h = 0; h < 4; h++) {
		char dir[512];
		snprintf(dir, sizeof(dir), "%s/netkit/links/%s/%s/%s", bpffs, ns, dev, hooks[h]);
		DIR *d = opendir(dir);
		if (!d)
			continue;
		for (struct dirent *e; (e = readdir(d));) {
			char path[1024];
			struct bpf_link_info info;
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			memset(&a, 0, sizeof(a));
			a.bpf.pathname = (uintptr_t)path;
			int fd = sys_bpf(BPF_OBJ_GET, &a);
			if (fd < 0)
				die("BPF_OBJ_GET");
			memset(&info, 0, sizeof(info));
			obj_info(fd, &info, sizeof(info));
			close(fd);
		}
		closedir(d);
	}
	memset(&a, 0, sizeof(a));
	a.query.target_ifindex = l.index;
	a.query.attach_type = hook_type(hook);
	a.query.prog_ids = (uintptr_t)progs;
	a.query.link_ids = (uintptr_t)links;
	a.query.count = 64;
	if (sys_bpf(BPF_PROG_QUERY, &a) < 0)
		die("BPF_PROG_QUERY");
	printf("%s (ifindex %d) %s revision %llu\n", dev, l.index, hook, (unsigned long long)a.query.revision);
	for (uint32_t i = 0; i < a.query.count; i++) {
		union attr b;
		struct bpf_prog_info info;
		memset(&b, 0, sizeof(b));
		b.bpf.prog_id = progs[i];
		int fd = sys_bpf(BPF_PROG_GET_FD_BY_ID, &b);
		if (fd < 0)
			die("BPF_PROG_GET_FD_BY_ID");
		memset(&info, 0, sizeof(info));
		obj_info(fd, &info, sizeof(info));
		printf("  %u %u %s %u\n", i + 1, info.id, info.name, links[i]);
		close(fd);
	}
	return 0;
}

// A recipe, written by the bench from the bundled object with aya_obj:
//   map TYPE KEY VALUE MAX FLAGS FD NAME    (FD: the number the code uses)
//   prog NAME LICENSE N
//   N instructions, one 64-bit hex word per line
static int attach(const char *dev, const char *hook, const char *recipe, const char *pin)
{
	FILE *f = fopen(recipe, "r");
	char word[64], name[64], license[64];
	uint64_t *insns = NULL;
	unsigned n = 0;
	union attr a;
	struct link l;

	if (!f)
		die(recipe);
	while (fscanf(f, "%63s", word) == 1) {
		if (!strcmp(word, "map")) {
			unsigned type, key, value, max, flags;
			int want;
			if (fscanf(f, "%u %u %u %u %u %d %63s", &type, &key, &value, &max, &flags, &want, name) != 7)
				die("recipe map");
			memset(&a, 0, sizeof(a));
			a.bpf.map_type = type;
			a.bpf.key_size = key;
			a.bpf.value_size = value;
			a.bpf.max_entries = max;
			a.bpf.map_flags = flags;
			snprintf(a.bpf.map_name, sizeof(a.bpf.map_name), "%.15s", name);
			int fd = sys_bpf(BPF_MAP_CREATE, &a);
			if (fd < 0)
				die("BPF_MAP_CREATE");
			if (fd != want && (dup2(fd, want) < 0 || close(fd) < 0))
				die("dup2");
		} else if (!strcmp(word, "prog")) {
			if (fscanf(f, "%63s %63s %u", name, license, &n) != 3)
				die("recipe prog");
			insns = calloc(n, sizeof(*insns));
			for (unsigned i = 0; i < n; i++)
				if (fscanf(f, "%lx", (unsigned long *)&insns[i]) != 1)
					die("recipe insn");
		}
	}
	fclose(f);
	memset(&a, 0, sizeof(a));
	a.bpf.prog_type = BPF_PROG_TYPE_SCHED_CLS;
	a.bpf.insns = (uintptr_t)insns;
	a.bpf.insn_cnt = n;
	a.bpf.license = (uintptr_t)license;
	snprintf(a.bpf.prog_name, sizeof(a.bpf.prog_name), "%.15s", name);
	int prog = sys_bpf(BPF_PROG_LOAD, &a);
	if (prog < 0)
		die("BPF_PROG_LOAD");
	getlink(rtnl(), 0, dev, &l, 1);
	memset(&a, 0, sizeof(a));
	a.link.prog_fd = prog;
	a.link.target_ifindex = l.index;
	a.link.attach_type = hook_type(hook);
	int link = sys_bpf(BPF_LINK_CREATE, &a);
	if (link < 0)
		die("BPF_LINK_CREATE");
	memset(&a, 0, sizeof(a));
	a.bpf.pathname = (uintptr_t)pin;
	a.bpf.bpf_fd = link;
	if (sys_bpf(BPF_OBJ_PIN, &a) < 0)
		die("BPF_OBJ_PIN");
	printf("attached %s on %s %s\n", name, dev, hook);
	return 0;
}

int main(int argc, char **argv)
{
	if ((argc == 2 || argc == 3) && !strcmp(argv[1], "device-list"))
		return device_list(argc == 3 && !strcmp(argv[2], "all"));
	if (argc == 2 && !strcmp(argv[1], "pairs"))
		return pairs();
	if (argc == 6 && !strcmp(argv[1], "query"))
		return query(argv[2], argv[3], argv[4], argv[5]);
	if (argc == 6 && !strcmp(argv[1], "attach"))
		return attach(argv[2], argv[3], argv[4], argv[5]);
	fprintf(stderr, "usage: startup device-list [all] | pairs | query DEV HOOK BPFFS NETNS | attach DEV HOOK RECIPE PIN\n");
	return 2;
}
