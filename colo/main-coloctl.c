/* coloctl: the operator's tool. Subcommands are a table; each documents itself. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static const struct subcommand subcommands[] = {
	{ "qmp", "SOCKET COMMAND [JSON-ARGS]", "run one QMP command, print its return value",
	  run_qmp },
	{ NULL, NULL, NULL, NULL },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: coloctl COMMAND [ARGS]\n\ncommands:\n");
	for (const struct subcommand *s = subcommands; s->name; s++)
		fprintf(out, "  %-10s %-28s %s\n", s->name, s->args, s->help);
	fprintf(out, "  %-10s %-28s %s\n", "help", "", "this text");
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
