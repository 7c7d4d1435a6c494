/* colo-agent: one replication agent (primary or secondary). The COLO loop itself
 * lands with the colo/ issue; until then this binary only documents its interface
 * and refuses to pretend it protects anything. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: colo-agent --role primary|secondary [options]\n"
		"\n"
		"Keeps a secondary VM in lock-step with a primary VM (COLO).\n"
		"\n"
		"  --role ROLE          primary or secondary (required)\n"
		"  --log-level LEVEL    debug|info|warn|err (default: info)\n"
		"  -h, --help           this text\n"
		"\n"
		"Status: replication is not implemented yet in this build; the agent exits\n"
		"with status 2 instead of running unprotected.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "role", required_argument, NULL, 'r' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *role = NULL;
	enum log_level level = LOG_INFO;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			role = optarg;
			break;
		case 'l':
			if (log_parse_level(optarg, &level) < 0) {
				fprintf(stderr, "colo-agent: bad --log-level '%s'\n", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!role || (strcmp(role, "primary") && strcmp(role, "secondary"))) {
		fprintf(stderr, "colo-agent: --role primary|secondary is required\n");
		usage(stderr);
		return 2;
	}
	log_init("colo-agent", level);
	log_err("%s: replication is not implemented in this build yet; refusing to run "
		"unprotected", role);
	return 2;
}
