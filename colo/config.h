/* config.h - colo-agent's configuration: one table of options, read from the command
 * line (`--name value` or `--name=value`) and/or a file (`--config FILE`: `name = value`
 * lines with the same names, `#` comments). The command line wins over the file.
 * `--help` prints every option with its default (config_usage()).
 *
 * Every value is checked when it is read; cross-checks (e.g. min < max interval,
 * which addresses a role needs) happen in config_validate(). Errors are one line,
 * naming the option and, for files, FILE:LINE.
 */
#ifndef COLO_COLO_CONFIG_H
#define COLO_COLO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "lib/log.h"

enum agent_role { ROLE_PRIMARY, ROLE_SECONDARY };
/* What runs the VM (docs/xen.md for xen). */
enum agent_backend { BACKEND_QEMU, BACKEND_XEN };

/* A numeric IPv4/IPv6 address and port ("10.77.0.2:7700", "[::1]:7700"). Numeric
 * only: a failover decision must not wait for DNS. */
struct colo_addr {
	char host[64]; /* as given, without brackets */
	uint16_t port;
	struct sockaddr_storage sa;
	socklen_t salen;
	bool set;
};

#define CONFIG_PATH_MAX 4096
#define CONFIG_SOCK_MAX 108 /* sizeof(sun_path) */
#define CONFIG_CMD_MAX 1024

struct agent_config {
	enum agent_role role;
	bool role_set;
	enum agent_backend backend;
	char qmp_socket[CONFIG_SOCK_MAX];
	char ram_file[CONFIG_PATH_MAX];	 /* qemu only */
	uint32_t domid;			 /* xen: the domain this host protects / replicates into */
	bool domid_set;
	char xen_helper[CONFIG_PATH_MAX]; /* xen: "" = colo-xen-helper next to colo-agent */
	bool disk_repl;			 /* xen: QEMU block replication (xen-set-replication) */
	/* xen secondary: libxc's restore rewires the domain's xenstore / console rings to
	 * these event channels (unbound ports of the domain; libxl publishes them as
	 * /local/domain/<domid>/store/port, console/port) served by these domains (0:
	 * dom0) at every checkpoint. docs/xen.md. */
	uint32_t xen_store_evtchn, xen_console_evtchn;
	uint32_t xen_store_domid, xen_console_domid;
	uint64_t ram_size; /* 0: take QEMU's (query-memory-size-summary) */
	struct colo_addr repl;
	struct colo_addr hb_bind;
	struct colo_addr hb_peer;
	char control_socket[CONFIG_SOCK_MAX];
	uint32_t max_interval_ms;
	uint32_t min_interval_ms;
	uint32_t hb_interval_ms;
	uint32_t hb_misses;
	char fence_cmd[CONFIG_CMD_MAX]; /* "" = none */
	uint32_t fence_timeout_ms;
	uint32_t connect_timeout_ms;
	enum log_level log_level;
	/* the net path (docs/net.md): on iff not no_net and a tap or bridge is given */
	bool no_net;
	char net_tap[16], net_bridge[16];
	uint32_t net_queue_out, net_queue_in, net_timeout_ms, net_port;
	char net_setup[CONFIG_PATH_MAX]; /* "" = next to the build */
};
bool config_net_enabled(const struct agent_config *c);

/* Defaults, in one place (also printed by config_usage()). */
#define CONFIG_DEFAULT_QMP "/run/colo/qmp.sock"
#define CONFIG_DEFAULT_CONTROL "/run/colo/agent.sock"
#define CONFIG_DEFAULT_REPL_PORT 7700
#define CONFIG_DEFAULT_HB_PORT 7701
#define CONFIG_DEFAULT_MAX_INTERVAL_MS 2000
#define CONFIG_DEFAULT_MIN_INTERVAL_MS 20
#define CONFIG_DEFAULT_HB_INTERVAL_MS 50
#define CONFIG_DEFAULT_HB_MISSES 6
#define CONFIG_DEFAULT_FENCE_TIMEOUT_MS 10000
#define CONFIG_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define CONFIG_DEFAULT_NET_QUEUE_OUT 0
#define CONFIG_DEFAULT_NET_QUEUE_IN 1
#define CONFIG_DEFAULT_NET_TIMEOUT_MS 50
#define CONFIG_DEFAULT_NET_PORT 7702
#define CONFIG_DEFAULT_XEN_HELPER "colo-xen-helper"
/* Xen's first reserved domid (DOMID_FIRST_RESERVED, 0x7ff0); 0 is dom0. */
#define CONFIG_DOMID_MAX 0x7fef

void config_defaults(struct agent_config *c);

/* Parse argv[1..]: options, --config FILE (read first, wherever it appears), --help.
 * Returns 0 (then call config_validate()), 1 if --help was given (nothing else is
 * checked), or -EINVAL with a one-line reason in err. */
int config_parse_args(struct agent_config *c, int argc, char **argv, char *err,
		      size_t err_len);
/* Read a `name = value` file over c. -EINVAL (err: "FILE:LINE: why") or -errno. */
int config_load_file(struct agent_config *c, const char *path, char *err, size_t err_len);
/* Cross-checks and role-specific requirements. 0 or -EINVAL with err. */
int config_validate(const struct agent_config *c, char *err, size_t err_len);
void config_usage(FILE *out);

/* "HOST[:PORT]" with numeric HOST ("[v6]" brackets when a port follows). */
int colo_addr_parse(const char *s, uint16_t default_port, struct colo_addr *out);
/* "host:port" / "[v6]:port" into buf. */
const char *colo_addr_str(const struct colo_addr *a, char *buf, size_t len);
const char *role_name(enum agent_role r);
const char *backend_kind_name(enum agent_backend b); /* "qemu", "xen" */

#endif
