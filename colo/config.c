/* config.c - the option table, its parsers, the file reader and the checks. */
#include "colo/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum opt_kind { OPT_ROLE, OPT_STR, OPT_SOCK, OPT_SIZE, OPT_MS, OPT_COUNT, OPT_ADDR,
		OPT_LEVEL, OPT_CONFIG, OPT_HELP, OPT_FLAG, OPT_BACKEND, OPT_DOMID, OPT_ONOFF };

struct opt_def {
	const char *name;
	enum opt_kind kind;
	size_t off;	    /* into struct agent_config */
	size_t size;	    /* of string fields */
	uint32_t min, max;  /* for OPT_MS and OPT_COUNT */
	uint16_t def_port;  /* for OPT_ADDR */
	const char *metavar;
	const char *def;    /* the default, as --help shows it */
	const char *help;
};

#define F(field) offsetof(struct agent_config, field), sizeof(((struct agent_config *)0)->field)
#define STR_(x) #x
#define STR(x) STR_(x)

static const struct opt_def opts[] = {
	{ "role", OPT_ROLE, F(role), 0, 0, 0, "ROLE", "(required)",
	  "primary or secondary" },
	{ "config", OPT_CONFIG, 0, 0, 0, 0, 0, "FILE", "(none)",
	  "read `name = value` lines (these option names) first; the command line wins" },
	{ "backend", OPT_BACKEND, F(backend), 0, 0, 0, "qemu|xen", "qemu",
	  "what runs the VM: QEMU/KVM, or a Xen HVM domain (docs/xen.md)" },
	{ "qmp-socket", OPT_SOCK, F(qmp_socket), 0, 0, 0, "PATH", CONFIG_DEFAULT_QMP,
	  "QEMU's QMP unix socket (a -qmp socket reserved for this agent; on Xen the device "
	  "model's, not libxl's qmp-libxl-<domid>)" },
	{ "ram-file", OPT_STR, F(ram_file), 0, 0, 0, "PATH", "(required for qemu)",
	  "the VM's RAM backend file (memory-backend-file mem-path, share=on); qemu only" },
	{ "domid", OPT_DOMID, F(domid), 1, CONFIG_DOMID_MAX, 0, "N", "(required for xen)",
	  "xen: the domain id of this host's VM (`xl domid NAME`); ignored by qemu" },
	{ "xen-helper", OPT_STR, F(xen_helper), 0, 0, 0, "PATH",
	  CONFIG_DEFAULT_XEN_HELPER " next to colo-agent",
	  "xen: the helper that runs libxenguest (docs/xen-helper.md)" },
	{ "disk-replication", OPT_ONOFF, F(disk_repl), 0, 0, 0, "on|off", "off",
	  "xen: drive QEMU's COLO block replication (xen-set-replication; docs/xen.md)" },
	{ "xen-store-evtchn", OPT_COUNT, F(xen_store_evtchn), 1, 131071, 0, "PORT",
	  "(required for a xen secondary)",
	  "xen secondary: the domain's xenstore event channel (allocated by the tool that "
	  "created the domain; libxl publishes it as /local/domain/<domid>/store/port; "
	  "docs/xen.md)" },
	{ "xen-console-evtchn", OPT_COUNT, F(xen_console_evtchn), 0, 131071, 0, "PORT",
	  "0 (no PV console)",
	  "xen secondary: the domain's console event channel (libxl: "
	  "/local/domain/<domid>/console/port)" },
	{ "xen-store-domid", OPT_COUNT, F(xen_store_domid), 0, CONFIG_DOMID_MAX, 0, "N", "0",
	  "xen secondary: the domain running xenstored" },
	{ "xen-console-domid", OPT_COUNT, F(xen_console_domid), 0, CONFIG_DOMID_MAX, 0, "N", "0",
	  "xen secondary: the domain running the console backend" },
	{ "ram-size", OPT_SIZE, F(ram_size), 0, 0, 0, "SIZE", "0 (ask QEMU); required for xen",
	  "guest RAM in bytes (K/M/G suffixes); refused unless QEMU and the file agree (xen: "
	  "the domain's memory, compared between the two hosts)" },
	{ "repl-addr", OPT_ADDR, F(repl), 0, 0, CONFIG_DEFAULT_REPL_PORT, "ADDR[:PORT]",
	  "primary: (required); secondary: 0.0.0.0:" STR(CONFIG_DEFAULT_REPL_PORT),
	  "replication link: primary connects to the secondary here; secondary listens here" },
	{ "heartbeat-bind", OPT_ADDR, F(hb_bind), 0, 0, CONFIG_DEFAULT_HB_PORT, "ADDR[:PORT]",
	  "0.0.0.0:" STR(CONFIG_DEFAULT_HB_PORT), "own UDP heartbeat socket" },
	{ "heartbeat-peer", OPT_ADDR, F(hb_peer), 0, 0, CONFIG_DEFAULT_HB_PORT, "ADDR[:PORT]",
	  "(required)", "the peer agent's heartbeat socket (port defaults to "
	  STR(CONFIG_DEFAULT_HB_PORT) ")" },
	{ "heartbeat-interval", OPT_MS, F(hb_interval_ms), 5, 10000, 0, "MS",
	  STR(CONFIG_DEFAULT_HB_INTERVAL_MS), "time between heartbeats" },
	{ "heartbeat-misses", OPT_COUNT, F(hb_misses), 2, 1000, 0, "N",
	  STR(CONFIG_DEFAULT_HB_MISSES), "peer is lost after N intervals of silence" },
	{ "control-socket", OPT_SOCK, F(control_socket), 0, 0, 0, "PATH", CONFIG_DEFAULT_CONTROL,
	  "coloctl's unix socket (created mode 0600)" },
	{ "max-interval", OPT_MS, F(max_interval_ms), 10, 3600000, 0, "MS",
	  STR(CONFIG_DEFAULT_MAX_INTERVAL_MS), "longest time from a commit to the next checkpoint" },
	{ "min-interval", OPT_MS, F(min_interval_ms), 0, 60000, 0, "MS",
	  STR(CONFIG_DEFAULT_MIN_INTERVAL_MS),
	  "shortest time from a commit to the next checkpoint (rate limit)" },
	{ "fence-cmd", OPT_STR, F(fence_cmd), 0, 0, 0, "CMD", "(none)",
	  "secondary: run with /bin/sh -c before taking over; non-zero exit = no takeover" },
	{ "fence-timeout", OPT_MS, F(fence_timeout_ms), 100, 600000, 0, "MS",
	  STR(CONFIG_DEFAULT_FENCE_TIMEOUT_MS), "a fence command running longer has failed" },
	{ "connect-timeout", OPT_MS, F(connect_timeout_ms), 100, 600000, 0, "MS",
	  STR(CONFIG_DEFAULT_CONNECT_TIMEOUT_MS), "primary: how long to try reaching the secondary" },
	{ "no-net", OPT_FLAG, F(no_net), 0, 0, 0, NULL, "off",
	  "do not compare network output even if --net-tap/--net-bridge are given "
	  "(the net path runs only when one of them is)" },
	{ "net-tap", OPT_STR, F(net_tap), 0, 0, 0, "IF", "vm0",
	  "the VM's tap (docs/net.md); giving it or --net-bridge enables the net path" },
	{ "net-bridge", OPT_STR, F(net_bridge), 0, 0, 0, "IF", "br0",
	  "the LAN bridge (primary: the tap is on it; secondary: joins it on takeover)" },
	{ "net-queue-out", OPT_COUNT, F(net_queue_out), 0, 65535, 0, "N",
	  STR(CONFIG_DEFAULT_NET_QUEUE_OUT), "NFQUEUE number for the VM's output (primary; a "
	  "secondary after its takeover, to rewrite)" },
	{ "net-queue-in", OPT_COUNT, F(net_queue_in), 0, 65535, 0, "N",
	  STR(CONFIG_DEFAULT_NET_QUEUE_IN), "NFQUEUE number for the VM's input (likewise)" },
	{ "net-compare-timeout", OPT_MS, F(net_timeout_ms), 1, 60000, 0, "MS",
	  STR(CONFIG_DEFAULT_NET_TIMEOUT_MS), "an unmatched output packet older -> checkpoint" },
	{ "net-link-port", OPT_COUNT, F(net_port), 1, 65535, 0, "PORT",
	  STR(CONFIG_DEFAULT_NET_PORT), "the net link's TCP port (secondary listens, primary "
	  "connects to the --repl-addr host)" },
	{ "net-setup", OPT_STR, F(net_setup), 0, 0, 0, "PATH", "(net/colo-net-setup next to "
	  "the build)", "the colo-net-setup script" },
	{ "log-level", OPT_LEVEL, F(log_level), 0, 0, 0, "LEVEL", "info", "debug|info|warn|err" },
	{ "help", OPT_HELP, 0, 0, 0, 0, 0, NULL, "", "this text" },
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static int fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

const char *role_name(enum agent_role r)
{
	return r == ROLE_PRIMARY ? "primary" : "secondary";
}

const char *backend_kind_name(enum agent_backend b)
{
	return b == BACKEND_XEN ? "xen" : "qemu";
}

void config_defaults(struct agent_config *c)
{
	*c = (struct agent_config){
		.max_interval_ms = CONFIG_DEFAULT_MAX_INTERVAL_MS,
		.min_interval_ms = CONFIG_DEFAULT_MIN_INTERVAL_MS,
		.hb_interval_ms = CONFIG_DEFAULT_HB_INTERVAL_MS,
		.hb_misses = CONFIG_DEFAULT_HB_MISSES,
		.fence_timeout_ms = CONFIG_DEFAULT_FENCE_TIMEOUT_MS,
		.connect_timeout_ms = CONFIG_DEFAULT_CONNECT_TIMEOUT_MS,
		.log_level = LOG_INFO,
		.net_queue_out = CONFIG_DEFAULT_NET_QUEUE_OUT,
		.net_queue_in = CONFIG_DEFAULT_NET_QUEUE_IN,
		.net_timeout_ms = CONFIG_DEFAULT_NET_TIMEOUT_MS,
		.net_port = CONFIG_DEFAULT_NET_PORT,
	};
	snprintf(c->qmp_socket, sizeof(c->qmp_socket), "%s", CONFIG_DEFAULT_QMP);
	snprintf(c->control_socket, sizeof(c->control_socket), "%s", CONFIG_DEFAULT_CONTROL);
	colo_addr_parse("0.0.0.0", CONFIG_DEFAULT_HB_PORT, &c->hb_bind);
}

/* Off by default so that agents without a network to protect (and the tests that
 * run them) need no root, no NFQUEUE and no tap. */
bool config_net_enabled(const struct agent_config *c)
{
	return !c->no_net && (c->net_tap[0] || c->net_bridge[0]);
}

int colo_addr_parse(const char *s, uint16_t default_port, struct colo_addr *out)
{
	char host[sizeof(out->host)];
	const char *port = NULL;
	struct colo_addr a = { .port = default_port };
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end || (size_t)(end - s - 1) >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, (size_t)(end - s - 1));
		host[end - s - 1] = '\0';
		if (end[1] == ':')
			port = end + 2;
		else if (end[1])
			return -EINVAL;
	} else {
		const char *colon = strchr(s, ':');
		if (colon && strchr(colon + 1, ':'))
			colon = NULL; /* bare IPv6 without a port */
		size_t n = colon ? (size_t)(colon - s) : strlen(s);
		if (n >= sizeof(host))
			return -EINVAL;
		memcpy(host, s, n);
		host[n] = '\0';
		port = colon ? colon + 1 : NULL;
	}
	if (port) {
		char *end;
		errno = 0;
		unsigned long p = strtoul(port, &end, 10);
		if (!*port || *end || errno || p == 0 || p > 65535 || !isdigit((unsigned char)*port))
			return -EINVAL;
		a.port = (uint16_t)p;
	}
	struct sockaddr_in *v4 = (struct sockaddr_in *)&a.sa;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&a.sa;
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons(a.port);
		a.salen = sizeof(*v4);
	} else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(a.port);
		a.salen = sizeof(*v6);
	} else {
		return -EINVAL;
	}
	if (a.port == 0)
		return -EINVAL;
	snprintf(a.host, sizeof(a.host), "%s", host);
	a.set = true;
	*out = a;
	return 0;
}

const char *colo_addr_str(const struct colo_addr *a, char *buf, size_t len)
{
	if (!a->set)
		snprintf(buf, len, "(unset)");
	else if (a->sa.ss_family == AF_INET6)
		snprintf(buf, len, "[%s]:%u", a->host, a->port);
	else
		snprintf(buf, len, "%s:%u", a->host, a->port);
	return buf;
}

/* "64M", "134217728", "1G": bytes. */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	unsigned shift = 0;
	if (*end) {
		switch (toupper((unsigned char)*end)) {
		case 'K': shift = 10; break;
		case 'M': shift = 20; break;
		case 'G': shift = 30; break;
		case 'T': shift = 40; break;
		default: return -EINVAL;
		}
		if (end[1] && !(toupper((unsigned char)end[1]) == 'B' && !end[2])
		    && !(toupper((unsigned char)end[1]) == 'I' && toupper((unsigned char)end[2]) == 'B'
			 && !end[3]))
			return -EINVAL;
	}
	if (shift && v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;
	errno = 0;
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -ERANGE;
	*out = (uint32_t)v;
	return 0;
}

static int set_string(char *dst, size_t size, const struct opt_def *o, const char *v,
		      char *err, size_t len)
{
	if (!*v && o->kind != OPT_STR)
		return fail(err, len, "--%s: empty value", o->name);
	if (strlen(v) >= size)
		return fail(err, len, "--%s: longer than %zu characters", o->name, size - 1);
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

/* Apply one option. file: where it came from ("" for the command line). */
static int apply(struct agent_config *c, const struct opt_def *o, const char *v, char *err,
		 size_t len)
{
	void *field = (char *)c + o->off;
	switch (o->kind) {
	case OPT_ROLE:
		if (!strcmp(v, "primary"))
			c->role = ROLE_PRIMARY;
		else if (!strcmp(v, "secondary"))
			c->role = ROLE_SECONDARY;
		else
			return fail(err, len, "--role: '%s' is neither primary nor secondary", v);
		c->role_set = true;
		return 0;
	case OPT_STR:
	case OPT_SOCK:
		return set_string(field, o->size, o, v, err, len);
	case OPT_SIZE:
		if (parse_size(v, field) < 0)
			return fail(err, len, "--%s: '%s' is not a size (bytes, or with K/M/G)",
				    o->name, v);
		return 0;
	case OPT_MS:
	case OPT_COUNT:
		if (parse_u32(v, o->min, o->max, field) < 0)
			return fail(err, len, "--%s: '%s' is not %s from %u to %u", o->name, v,
				    o->kind == OPT_MS ? "a time in ms" : "a number", o->min,
				    o->max);
		return 0;
	case OPT_ADDR:
		if (colo_addr_parse(v, o->def_port, field) < 0)
			return fail(err, len, "--%s: '%s' is not a numeric ADDR[:PORT] "
				    "(e.g. 10.77.0.2:%u or [fd00::2]:%u)", o->name, v,
				    o->def_port, o->def_port);
		return 0;
	case OPT_LEVEL:
		if (log_parse_level(v, field) < 0)
			return fail(err, len, "--log-level: '%s' is not debug|info|warn|err", v);
		return 0;
	case OPT_FLAG:
		if (!strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "true"))
			*(bool *)field = true;
		else if (!strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "false"))
			*(bool *)field = false;
		else
			return fail(err, len, "--%s: '%s' is not yes|no", o->name, v);
		return 0;
	case OPT_BACKEND:
		if (!strcmp(v, "qemu"))
			c->backend = BACKEND_QEMU;
		else if (!strcmp(v, "xen"))
			c->backend = BACKEND_XEN;
		else
			return fail(err, len, "--backend: '%s' is neither qemu nor xen", v);
		return 0;
	case OPT_DOMID:
		if (parse_u32(v, o->min, o->max, field) < 0)
			return fail(err, len, "--domid: '%s' is not a domain id from %u to %u (dom0 "
				    "cannot be protected)", v, o->min, o->max);
		c->domid_set = true;
		return 0;
	case OPT_ONOFF:
		if (!strcmp(v, "on"))
			*(bool *)field = true;
		else if (!strcmp(v, "off"))
			*(bool *)field = false;
		else
			return fail(err, len, "--%s: '%s' is neither on nor off", o->name, v);
		return 0;
	case OPT_CONFIG:
	case OPT_HELP:
		break;
	}
	return fail(err, len, "--%s cannot be set here", o->name);
}

static const struct opt_def *find(const char *name, size_t n)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (strlen(opts[i].name) == n && !strncmp(opts[i].name, name, n))
			return &opts[i];
	return NULL;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int file_line(struct agent_config *c, const char *path, unsigned lineno, char *line,
		     char *err, size_t len)
{
	char why[512];
	char *s = trim(line);
	if (!*s || *s == '#')
		return 0;
	char *eq = strchr(s, '=');
	if (!eq)
		return fail(err, len, "%s:%u: expected `name = value`", path, lineno);
	*eq = '\0';
	char *name = trim(s), *val = trim(eq + 1);
	const struct opt_def *o = find(name, strlen(name));
	if (!o || o->kind == OPT_HELP || o->kind == OPT_CONFIG)
		return fail(err, len, "%s:%u: unknown option '%s' (see colo-agent --help)", path,
			    lineno, name);
	if (apply(c, o, val, why, sizeof(why)) < 0)
		return fail(err, len, "%s:%u: %s", path, lineno, why);
	return 0;
}

int config_load_file(struct agent_config *c, const char *path, char *err, size_t len)
{
	FILE *f = fopen(path, "r");
	char line[CONFIG_PATH_MAX + 64];
	unsigned lineno = 0;
	int r = 0;
	if (!f) {
		r = -errno;
		snprintf(err, len, "--config %s: %s", path, strerror(-r));
		return r;
	}
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			r = fail(err, len, "%s:%u: line too long", path, lineno);
			goto out;
		}
		r = file_line(c, path, lineno, line, err, len);
		if (r < 0)
			goto out;
	}
	if (ferror(f))
		r = fail(err, len, "%s: read error", path);
out:
	fclose(f);
	return r;
}

/* Split "--name=value" / "--name value"; *consumed is how many argv entries. */
static int split_arg(int argc, char **argv, int i, const struct opt_def **o, const char **val,
		     int *consumed, char *err, size_t len)
{
	const char *a = argv[i];
	if (!strcmp(a, "-h"))
		a = "--help";
	if (strncmp(a, "--", 2) || !a[2])
		return fail(err, len, "unexpected argument '%s' (options are --name value; see "
			    "--help)", argv[i]);
	const char *name = a + 2, *eq = strchr(name, '=');
	*o = find(name, eq ? (size_t)(eq - name) : strlen(name));
	if (!*o)
		return fail(err, len, "unknown option '%s' (see colo-agent --help)", argv[i]);
	*consumed = 1;
	*val = NULL;
	if ((*o)->kind == OPT_HELP)
		return 0;
	if ((*o)->kind == OPT_FLAG) {
		*val = eq ? eq + 1 : "1"; /* --no-net takes no value */
		return 0;
	}
	if (eq) {
		*val = eq + 1;
	} else if (i + 1 < argc) {
		*val = argv[i + 1];
		*consumed = 2;
	} else {
		return fail(err, len, "--%s needs a value (%s)", (*o)->name, (*o)->metavar);
	}
	return 0;
}

int config_parse_args(struct agent_config *c, int argc, char **argv, char *err, size_t len)
{
	const struct opt_def *o;
	const char *val;
	int n, r;
	/* Pass 1: --help and --config, so the file is under the command line. */
	for (int i = 1; i < argc; i += n) {
		r = split_arg(argc, argv, i, &o, &val, &n, err, len);
		if (r < 0)
			return r;
		if (o->kind == OPT_HELP)
			return 1;
		if (o->kind == OPT_CONFIG) {
			r = config_load_file(c, val, err, len);
			if (r < 0)
				return -EINVAL;
		}
	}
	for (int i = 1; i < argc; i += n) {
		split_arg(argc, argv, i, &o, &val, &n, err, len);
		if (o->kind != OPT_CONFIG && (r = apply(c, o, val, err, len)) < 0)
			return r;
	}
	return 0;
}

int config_validate(const struct agent_config *c, char *err, size_t len)
{
	if (!c->role_set)
		return fail(err, len, "--role primary|secondary is required");
	if (c->backend == BACKEND_QEMU && !c->ram_file[0])
		return fail(err, len, "--ram-file is required (the VM's memory-backend-file "
			    "mem-path)");
	if (c->backend == BACKEND_XEN && !c->domid_set)
		return fail(err, len, "--backend xen needs --domid (the Xen domain id of this "
			    "host's VM: `xl domid NAME`)");
	if (c->backend == BACKEND_XEN && !c->ram_size)
		return fail(err, len, "--backend xen needs --ram-size (the domain's memory, as "
			    "`xl list` shows it; the same on both hosts)");
	if (c->backend == BACKEND_XEN && c->role == ROLE_SECONDARY && !c->xen_store_evtchn)
		return fail(err, len, "a xen secondary needs --xen-store-evtchn (the domain's "
			    "xenstore event channel, see docs/xen.md; libxc's restore writes it "
			    "into the domain at every checkpoint)");
	if (c->backend == BACKEND_QEMU && c->disk_repl)
		return fail(err, len, "--disk-replication is Xen's COLO block replication; the "
			    "qemu backend has none (use --backend xen, or leave it off)");
	if (!c->hb_peer.set)
		return fail(err, len, "--heartbeat-peer is required (the %s agent's heartbeat "
			    "address)", c->role == ROLE_PRIMARY ? "secondary" : "primary");
	if (c->role == ROLE_PRIMARY && !c->repl.set)
		return fail(err, len, "--repl-addr is required on the primary (the secondary's "
			    "replication address)");
	if (c->min_interval_ms >= c->max_interval_ms)
		return fail(err, len, "--min-interval (%u ms) must be below --max-interval "
			    "(%u ms)", c->min_interval_ms, c->max_interval_ms);
	if (c->ram_size % 4096)
		return fail(err, len, "--ram-size %" PRIu64 " is not a multiple of 4096",
			    c->ram_size);
	if (c->fence_cmd[0] && c->role == ROLE_PRIMARY)
		return fail(err, len, "--fence-cmd is for the secondary (it fences the primary "
			    "before taking over)");
	if (config_net_enabled(c) && c->net_queue_out == c->net_queue_in)
		return fail(err, len, "--net-queue-out and --net-queue-in are both %u; they "
			    "must differ", c->net_queue_in);
	if ((uint64_t)c->hb_interval_ms * c->hb_misses > 600000)
		return fail(err, len, "--heartbeat-interval x --heartbeat-misses is over 10 "
			    "minutes; a failover that slow is not a failover");
	return 0;
}

void config_usage(FILE *out)
{
	fprintf(out,
		"usage: colo-agent --role primary|secondary [options]\n"
		"\n"
		"Keeps a secondary VM in lock-step with a primary VM (COLO), one agent per host.\n"
		"Options may also come from --config FILE as `name = value` lines.\n"
		"\n");
	for (size_t i = 0; i < NOPTS; i++) {
		const struct opt_def *o = &opts[i];
		char left[64];
		snprintf(left, sizeof(left), "--%s%s%s", o->name, o->metavar ? " " : "",
			 o->metavar ? o->metavar : "");
		fprintf(out, "  %-32s %s\n", left, o->help);
		if (o->def[0])
			fprintf(out, "  %-32s   default: %s\n", "", o->def);
	}
	fprintf(out,
		"\n"
		"Exit status: 0 after SIGTERM/SIGINT, 1 when the agent fails or refuses the VM,\n"
		"2 for bad usage. Control it with coloctl (status, checkpoint, failover, watch).\n"
		"See docs/colo-states.md, docs/failover.md and docs/control.md.\n");
}
