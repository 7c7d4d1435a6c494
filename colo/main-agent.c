/* colo-agent: one replication agent (primary or secondary).
 *
 * Order matters for "nothing changed" on refusal: read and check the configuration,
 * connect to QEMU and probe it (queries only), check the VM against the configuration,
 * claim the control socket; only then start the heartbeat and the replicator. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "colo/agent.h"
#include "colo/backend.h"
#include "colo/config.h"
#include "colo/control.h"
#include "colo/net_glue.h"
#include "colo/repl_iface.h"
#include "lib/log.h"
#include "lib/loop.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2

struct probe {
	bool done;
	int err;
	char why[600];
	struct backend_info info;
};

static void on_probe(struct backend *b, int err, const char *why, const struct backend_info *in,
		     void *arg)
{
	struct probe *p = arg;
	p->done = true;
	p->err = err;
	snprintf(p->why, sizeof(p->why), "%s", why ? why : "");
	if (in)
		p->info = *in;
}

/* The backend --backend names. */
static int open_backend(struct loop *loop, const struct agent_config *cfg, struct backend **be)
{
	if (cfg->backend == BACKEND_XEN)
		return backend_xen_open(loop, cfg->qmp_socket, cfg->domid, cfg->ram_size, be);
	return backend_qemu_open(loop, cfg->qmp_socket, be);
}

/* Connect and probe; read-only. 0, or EXIT_FAIL with the reason logged. */
static int probe_vm(struct loop *loop, const struct agent_config *cfg, struct backend **be,
		    struct probe *p)
{
	int r = open_backend(loop, cfg, be);
	if (r < 0) {
		log_err("cannot connect to QEMU's QMP socket %s: %s; is QEMU running with -qmp "
			"unix:%s,server=on,wait=off? (see --qmp-socket%s)", cfg->qmp_socket,
			strerror(-r), cfg->qmp_socket, cfg->backend == BACKEND_XEN
			? "; on Xen give the device model this socket with device_model_args, "
			  "docs/xen.md" : "");
		return EXIT_FAIL;
	}
	r = backend_probe(*be, on_probe, p);
	while (r == 0 && !p->done)
		r = loop_run_once(loop, -1); /* QMP's own timeouts bound this */
	if (r < 0 || p->err < 0) {
		log_err("QMP socket %s: %s; is it QEMU's QMP socket, and is no other client "
			"connected to it?", cfg->qmp_socket, r < 0 ? strerror(-r) : p->why);
		return EXIT_FAIL;
	}
	char dom[48] = "";
	if (cfg->backend == BACKEND_XEN)
		snprintf(dom, sizeof(dom), "Xen domain %u, device model ", cfg->domid);
	log_info("VM behind %s: %sQEMU %s, status %s, pid %d, %" PRIu64 " MiB, configuration "
		 "%016" PRIx64, cfg->qmp_socket, dom, p->info.version, p->info.status, p->info.pid,
		 p->info.ram_size >> 20, p->info.config_hash);
	log_debug("configuration text:\n%s", p->info.config_text);
	return 0;
}

/* Xen: the helper runs libxenguest; default next to our own binary. Checked before
 * anything starts, so a missing helper is one clear line, not a failed replicator. */
static int resolve_xen_helper(struct agent_config *cfg)
{
	if (cfg->backend != BACKEND_XEN)
		return 0;
	if (!cfg->xen_helper[0]) {
		char self[CONFIG_PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n <= 0) {
			log_err("cannot tell where colo-agent is (/proc/self/exe): %s; give "
				"--xen-helper", strerror(errno));
			return -1;
		}
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash)
			*slash = '\0';
		if ((size_t)snprintf(cfg->xen_helper, sizeof(cfg->xen_helper), "%s/%s", self,
				     CONFIG_DEFAULT_XEN_HELPER) >= sizeof(cfg->xen_helper)) {
			log_err("colo-agent's directory %s is too long; give --xen-helper", self);
			return -1;
		}
	}
	if (access(cfg->xen_helper, X_OK) < 0) {
		log_err("the Xen helper %s cannot be run: %s (build it with libxen-dev installed, or "
			"give --xen-helper; docs/xen-helper.md)", cfg->xen_helper, strerror(errno));
		return -1;
	}
	log_info("xen: domain %u, helper %s, disk replication %s", cfg->domid, cfg->xen_helper,
		 cfg->disk_repl ? "on" : "off");
	return 0;
}

static void on_signal(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct signalfd_siginfo si;
	if (read(fd, &si, sizeof(si)) != sizeof(si))
		return;
	log_info("signal %u: shutting down", si.ssi_signo);
	agent_shutdown(arg);
}

static int watch_signals(struct loop *loop, struct agent *a)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0 || loop_add_fd(loop, fd, EPOLLIN, on_signal, a) < 0) {
		log_err("cannot watch SIGTERM/SIGINT: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static void on_agent_change(struct agent *a, void *arg)
{
	control_poke(arg);
}

/* Everything from the checked VM on. Returns the exit status. */
static int run(struct loop *loop, const struct agent_config *cfg, struct backend *be,
	       const struct backend_info *vm, const struct colo_repl *engine)
{
	struct agent *a = NULL;
	struct control *ctl = NULL;
	struct control_ops ops;
	int sfd = -1, rc = EXIT_FAIL;
	struct netpath *np = NULL;
	struct colo_net_hooks hooks;
	struct agent_deps deps = { .backend = be, .vm = vm, .repl = engine };
	if (config_net_enabled(cfg)) {
		if (net_glue_open(loop, cfg, vm->config_hash, &np, &hooks) < 0)
			goto out; /* logged; the VM's network would be unprotected */
		deps.net = &hooks;
	} else {
		log_info("%s: no net path (no --net-tap/--net-bridge, or --no-net): network "
			 "output is not compared", role_name(cfg->role));
	}
	if (agent_new(loop, cfg, &deps, &a) < 0)
		goto out;
	if (np)
		net_glue_attach(np, a);
	control_ops_for_agent(a, &ops);
	if (control_open(loop, cfg->control_socket, &ops, &ctl) < 0)
		goto out; /* logged; e.g. another agent on this socket: nothing touched */
	agent_set_observer(a, on_agent_change, ctl);
	sfd = watch_signals(loop, a);
	if (sfd < 0 || agent_start(a) < 0)
		goto out;
	while (!agent_done(a))
		if (loop_run_once(loop, -1) < 0)
			break;
	rc = agent_exit_status(a);
out:
	if (a && !agent_done(a))
		rc = EXIT_FAIL;
	control_close(ctl);
	agent_free(a);
	net_glue_close(np); /* the primary's rules go on every exit path */
	if (sfd >= 0) {
		loop_del_fd(loop, sfd);
		close(sfd);
	}
	return rc;
}

int main(int argc, char **argv)
{
	struct agent_config cfg;
	struct loop *loop = NULL;
	struct backend *be = NULL;
	struct probe p = { 0 };
	char err[600];
	int rc = EXIT_FAIL;
	config_defaults(&cfg);
	int r = config_parse_args(&cfg, argc, argv, err, sizeof(err));
	if (r == 1) {
		config_usage(stdout);
		return 0;
	}
	if (r < 0 || config_validate(&cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "colo-agent: %s\n", err);
		return EXIT_USAGE;
	}
	log_init("colo-agent", cfg.log_level);
	signal(SIGPIPE, SIG_IGN);
	if (resolve_xen_helper(&cfg) < 0 || loop_new(&loop) < 0)
		goto out;
	rc = probe_vm(loop, &cfg, &be, &p);
	if (rc)
		goto out;
	rc = EXIT_FAIL;
	if (agent_check_vm(&cfg, &p.info, err, sizeof(err)) < 0) {
		log_err("%s: refusing this VM: %s", role_name(cfg.role), err);
		goto out;
	}
	rc = run(loop, &cfg, be, &p.info, colo_repl_engine());
out:
	backend_free(be);
	loop_free(loop);
	return rc;
}
