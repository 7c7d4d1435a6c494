/* coloctl: the operator's tool. Subcommands are a table; each documents itself. */
#include <stdio.h>
#include <string.h>

struct subcommand {
	const char *name;
	const char *args;
	const char *help;
	int (*run)(int argc, char **argv);
};

static const struct subcommand subcommands[] = {
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
