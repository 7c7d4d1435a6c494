/* coloctl: the operator's tool. Subcommands are a table; each documents itself. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "colo/config.h"
#include "colo/ctl_client.h"
#include "lib/log.h"
#include "qmp/qmp.h"

struct subcommand {
	const char *name;
	const char *args;
	const char *help;
	int (*run)(int argc, char **argv);
};

/* Long enough for a slow xen-save-devices-state, short enough for a human. */
#define CTL_QMP_TIMEOUT_MS 10000

/* coloctl qmp SOCKET COMMAND [JSON-ARGS]: exit 0 with the return value as JSON on
 * stdout; 1 with QEMU's error (or the connection's) on stderr; 2 for bad usage. */
static int run_qmp(int argc, char **argv)
{
	struct qmp_args *args = NULL;
	yajl_val ret = NULL;
	char why[512], *text = NULL;
	int rc = 1;
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: coloctl qmp SOCKET COMMAND [JSON-ARGS]\n");
		return 2;
	}
	log_init("coloctl", LOG_WARN);
	if (argc == 4 && qmp_args_parse(argv[3], &args, why, sizeof(why)) < 0) {
		fprintf(stderr, "coloctl qmp: bad JSON-ARGS: %s\n", why);
		return 2;
	}
	int r = qmp_call_sync(argv[1], argv[2], args, -1, CTL_QMP_TIMEOUT_MS, &ret, why,
			      sizeof(why));
	if (r == -EREMOTEIO) {
		fprintf(stderr, "coloctl qmp: QEMU error: %s\n", why);
		goto out;
	}
	if (r < 0) {
		fprintf(stderr, "coloctl qmp: %s failed: %s\n", argv[2], why[0] ? why : strerror(-r));
		goto out;
	}
	if (qmp_json_format(ret, true, &text) < 0) {
		fprintf(stderr, "coloctl qmp: cannot format QEMU's reply\n");
		goto out;
	}
	size_t len = strlen(text);
	while (len > 0 && text[len - 1] == '\n') /* yajl's beautifier ends with one */
		text[--len] = '\0';
	printf("%s\n", text);
	rc = 0;
out:
	free(text);
	yajl_tree_free(ret);
	return rc;
}

/* Replies come at once, except `checkpoint`, which waits for the commit (the agent
 * gives up after 30 s itself). */
#define CTL_REPLY_TIMEOUT_MS 5000
#define CTL_CHECKPOINT_WAIT_MS 35000

struct ctl_opts {
	const char *socket;
	bool json, confirm_fenced;
};

/* --socket PATH / --socket=PATH, and the flags a subcommand allows. 0 or 2 (usage). */
static int ctl_args(int argc, char **argv, const char *allowed, struct ctl_opts *o)
{
	*o = (struct ctl_opts){ .socket = CONFIG_DEFAULT_CONTROL };
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--socket") && i + 1 < argc)
			o->socket = argv[++i];
		else if (!strncmp(argv[i], "--socket=", 9))
			o->socket = argv[i] + 9;
		else if (!strcmp(argv[i], "--json") && strstr(allowed, "--json"))
			o->json = true;
		else if (!strcmp(argv[i], "--confirm-fenced") && strstr(allowed, "--confirm-fenced"))
			o->confirm_fenced = true;
		else {
			fprintf(stderr, "usage: coloctl %s [--socket PATH]%s%s\n", argv[0],
				allowed[0] ? " " : "", allowed);
			return 2;
		}
	}
	return 0;
}

/* Send one request and read one reply line; 0, or 1 with the reason printed. */
static int ctl_call(struct ctl_conn *c, const struct ctl_opts *o, enum ctl_cmd cmd,
		    int timeout_ms, char *line, size_t len)
{
	char why[300];
	if (ctl_connect(c, o->socket, why, sizeof(why)) < 0) {
		fprintf(stderr, "coloctl: %s\n", why);
		return 1;
	}
	int r = ctl_send(c, cmd, o->confirm_fenced);
	if (r == 0)
		r = ctl_recv_line(c, line, len, timeout_ms);
	if (r < 0) {
		fprintf(stderr, "coloctl: no reply from the agent on %s: %s\n", o->socket,
			r == -ETIMEDOUT ? "timed out" : strerror(-r));
		ctl_close(c);
		return 1;
	}
	return 0;
}

/* Print the payload of an ok reply with show(), or the agent's error. */
static int ctl_show(const char *line, const struct ctl_opts *o,
		    void (*show)(FILE *out, yajl_val v))
{
	char why[300];
	yajl_val tree = NULL;
	yajl_val v = ctl_reply_parse(line, &tree, why, sizeof(why));
	int rc = 0;
	if (!v) {
		fprintf(stderr, "coloctl: %s\n", why);
		rc = 1;
	} else if (o->json) {
		printf("%s\n", line);
	} else {
		show(stdout, v);
	}
	yajl_tree_free(tree);
	return rc;
}

static void show_text(FILE *out, yajl_val v)
{
	fprintf(out, "%s\n", YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : "ok");
}

static void show_checkpoint(FILE *out, yajl_val v)
{
	yajl_val n = yajl_tree_get(v, (const char *[]){ "number", NULL }, yajl_t_number);
	yajl_val p = yajl_tree_get(v, (const char *[]){ "pause_ms", NULL }, yajl_t_number);
	yajl_val d = yajl_tree_get(v, (const char *[]){ "dirty_pages", NULL }, yajl_t_number);
	fprintf(out, "checkpoint %lld committed (pause %.2f ms, %lld dirty pages)\n",
		n ? YAJL_GET_INTEGER(n) : -1, p ? YAJL_GET_DOUBLE(p) : -1.0,
		d ? YAJL_GET_INTEGER(d) : -1);
}

static int simple_cmd(int argc, char **argv, const char *allowed, enum ctl_cmd cmd,
		      int timeout_ms, void (*show)(FILE *, yajl_val))
{
	struct ctl_opts o;
	struct ctl_conn c;
	static char line[65536];
	int rc = ctl_args(argc, argv, allowed, &o);
	if (rc)
		return rc;
	rc = ctl_call(&c, &o, cmd, timeout_ms, line, sizeof(line));
	if (rc)
		return rc;
	rc = ctl_show(line, &o, show);
	ctl_close(&c);
	return rc;
}

/* coloctl status [--json]: 0 and the status; 1 if the agent cannot be reached. */
static int run_status(int argc, char **argv)
{
	return simple_cmd(argc, argv, "[--json]", CTL_STATUS, CTL_REPLY_TIMEOUT_MS,
			  ctl_print_status);
}

/* coloctl checkpoint: waits until the checkpoint is committed (exit 0) or refused (1). */
static int run_checkpoint(int argc, char **argv)
{
	return simple_cmd(argc, argv, "[--json]", CTL_CHECKPOINT, CTL_CHECKPOINT_WAIT_MS,
			  show_checkpoint);
}

/* coloctl failover [--confirm-fenced]: 0 when the agent started it (what happens next is
 * printed), 1 when it refused (why is printed). */
static int run_failover(int argc, char **argv)
{
	return simple_cmd(argc, argv, "[--confirm-fenced] [--json]", CTL_FAILOVER,
			  CTL_REPLY_TIMEOUT_MS, show_text);
}

/* coloctl watch [--json]: one line per second until interrupted or the agent exits. */
static int run_watch(int argc, char **argv)
{
	struct ctl_opts o;
	struct ctl_conn c;
	static char line[65536];
	int rc = ctl_args(argc, argv, "[--json]", &o);
	if (rc)
		return rc;
	setvbuf(stdout, NULL, _IOLBF, 0);
	rc = ctl_call(&c, &o, CTL_WATCH, CTL_REPLY_TIMEOUT_MS, line, sizeof(line));
	while (rc == 0) {
		rc = ctl_show(line, &o, ctl_print_watch_line);
		if (rc)
			break;
		int r = ctl_recv_line(&c, line, sizeof(line), 3 * 1000);
		if (r < 0) {
			fprintf(stderr, "coloctl watch: %s\n", r == -ECONNRESET
				? "the agent closed the connection (it exited?)" : strerror(-r));
			rc = 1;
		}
	}
	ctl_close(&c);
	return rc;
}

static const struct subcommand subcommands[] = {
	{ "status", "[--json] [--socket PATH]", "the agent's state, peer, checkpoints, pauses",
	  run_status },
	{ "checkpoint", "[--socket PATH]", "take a checkpoint now (primary); wait for it",
	  run_checkpoint },
	{ "failover", "[--confirm-fenced] [--socket PATH]",
	  "planned takeover (docs/failover.md); after a failed fence, retry or confirm",
	  run_failover },
	{ "watch", "[--json] [--socket PATH]", "one status line per second", run_watch },
	{ "qmp", "SOCKET COMMAND [JSON-ARGS]", "run one QMP command, print its return value",
	  run_qmp },
	{ NULL, NULL, NULL, NULL },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: coloctl COMMAND [ARGS]\n\ncommands:\n");
	for (const struct subcommand *s = subcommands; s->name; s++)
		fprintf(out, "  %-10s %-36s %s\n", s->name, s->args, s->help);
	fprintf(out, "  %-10s %-36s %s\n", "help", "", "this text");
	fprintf(out, "\nThe control socket defaults to %s (colo-agent --control-socket).\n",
		CONFIG_DEFAULT_CONTROL);
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (const struct subcommand *s = subcommands; s->name; s++)
		if (!strcmp(argv[1], s->name))
			return s->run(argc - 1, argv + 1);
	fprintf(stderr, "coloctl: unknown command '%s' (try: coloctl help)\n", argv[1]);
	return 2;
}
