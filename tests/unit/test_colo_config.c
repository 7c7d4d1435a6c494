/* colo/config.c: flags, the config file, precedence, bad values, --help. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "colo/config.h"
#include "tests/harness/test.h"

#define ARGV(...) (char *[]){ "colo-agent", __VA_ARGS__, NULL }
/* argc of an ARGV(...) list: everything but the NULL. */
#define NARGS(...) ((int)(sizeof((char *[]){ "colo-agent", __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(c, err, ...) parse(c, NARGS(__VA_ARGS__), ARGV(__VA_ARGS__), err)
#define BAD(needle, ...) expect_bad(NARGS(__VA_ARGS__), ARGV(__VA_ARGS__), needle)

static int parse(struct agent_config *c, int argc, char **argv, char *err)
{
	config_defaults(c);
	return config_parse_args(c, argc, argv, err, 256);
}

static void test_defaults_and_flags(void)
{
	struct agent_config c;
	char err[256] = "";
	REQUIRE(PARSE(&c, err, "--role", "primary", "--ram-file=/dev/shm/x.ram", "--repl-addr",
		      "10.77.0.2", "--heartbeat-peer", "10.77.0.2:9000", "--min-interval", "5",
		      "--ram-size", "128M", "--log-level", "debug") == 0);
	CHECK(c.role_set && c.role == ROLE_PRIMARY);
	CHECK(!strcmp(c.ram_file, "/dev/shm/x.ram"));
	CHECK_EQ(c.repl.port, CONFIG_DEFAULT_REPL_PORT);
	CHECK_EQ(c.hb_peer.port, 9000);
	CHECK_EQ(c.hb_bind.port, CONFIG_DEFAULT_HB_PORT);
	CHECK_EQ(c.min_interval_ms, 5);
	CHECK_EQ(c.max_interval_ms, CONFIG_DEFAULT_MAX_INTERVAL_MS);
	CHECK_EQ(c.hb_interval_ms, 50);
	CHECK_EQ(c.hb_misses, 6);
	CHECK_EQ(c.ram_size, 128ull << 20);
	CHECK_EQ(c.log_level, LOG_DEBUG);
	CHECK(!strcmp(c.qmp_socket, CONFIG_DEFAULT_QMP));
	CHECK(!strcmp(c.control_socket, CONFIG_DEFAULT_CONTROL));
	CHECK(config_validate(&c, err, sizeof(err)) == 0);
}

static void test_file_and_precedence(void)
{
	char path[] = "/tmp/colo-config-XXXXXX";
	int fd = mkstemp(path);
	REQUIRE(fd >= 0);
	const char *text = "# a comment\n\n role = secondary \nram-file=/r.ram\n"
			   "heartbeat-peer = 10.77.0.1\nmax-interval = 3000\n"
			   "fence-cmd = /bin/echo fenced  \n";
	REQUIRE(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	struct agent_config c;
	char err[256] = "";
	/* The command line wins, wherever --config sits. */
	REQUIRE(PARSE(&c, err, "--max-interval", "4000", "--config", path) == 0);
	CHECK(c.role == ROLE_SECONDARY);
	CHECK_EQ(c.max_interval_ms, 4000);
	CHECK(!strcmp(c.fence_cmd, "/bin/echo fenced"));
	CHECK(config_validate(&c, err, sizeof(err)) == 0);

	FILE *f = fopen(path, "w");
	REQUIRE(f);
	fputs("role = primary\nbogus = 1\n", f);
	fclose(f);
	CHECK(PARSE(&c, err, "--config", path) == -EINVAL);
	CHECK(strstr(err, ":2: unknown option 'bogus'") != NULL);
	f = fopen(path, "w");
	fputs("heartbeat-misses = 1\n", f);
	fclose(f);
	CHECK(PARSE(&c, err, "--config", path) == -EINVAL);
	CHECK(strstr(err, ":1: --heartbeat-misses") != NULL);
	f = fopen(path, "w");
	fputs("no equals sign\n", f);
	fclose(f);
	CHECK(PARSE(&c, err, "--config", path) == -EINVAL);
	unlink(path);
	CHECK(PARSE(&c, err, "--config", path) == -EINVAL);
	CHECK(strstr(err, "No such file") != NULL);
}

static void expect_bad(int argc, char **argv, const char *needle)
{
	struct agent_config c;
	char err[256] = "";
	int r = parse(&c, argc, argv, err);
	if (r == 0)
		r = config_validate(&c, err, sizeof(err));
	CHECK(r == -EINVAL);
	if (!strstr(err, needle)) {
		fprintf(stderr, "    error '%s' lacks '%s'\n", err, needle);
		CHECK(!"error names the problem");
	}
}

static void test_bad_values(void)
{
	BAD("neither primary nor secondary", "--role", "tertiary");
	BAD("needs a value", "--role");
	BAD("--heartbeat-interval", "--heartbeat-interval", "0");
	BAD("--heartbeat-interval", "--heartbeat-interval", "50ms");
	BAD("--max-interval", "--max-interval", "-5");
	BAD("--ram-size", "--ram-size", "12Q");
	BAD("numeric", "--repl-addr", "host.example:1");
	BAD("--repl-addr", "--repl-addr", "10.0.0.1:70000");
	BAD("--log-level", "--log-level", "loud");
	BAD("unknown option '--frobnicate'", "--frobnicate");
	BAD("unexpected argument 'stray'", "stray");
	char longp[200];
	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	BAD("longer than 107", "--control-socket", longp);
	/* Cross-checks. */
	BAD("--role", "--ram-file=/r");
	BAD("--ram-file", "--role", "primary");
	BAD("--heartbeat-peer", "--role", "secondary", "--ram-file", "/r");
	BAD("--repl-addr", "--role", "primary", "--ram-file", "/r", "--heartbeat-peer", "1.2.3.4");
	BAD("must be below", "--role", "secondary", "--ram-file", "/r", "--heartbeat-peer",
	    "1.2.3.4", "--min-interval", "500", "--max-interval", "500");
	BAD("for the secondary", "--role", "primary", "--ram-file", "/r", "--heartbeat-peer",
	    "1.2.3.4", "--repl-addr", "1.2.3.4", "--fence-cmd", "true");
	BAD("not a multiple of 4096", "--role", "secondary", "--ram-file", "/r",
	    "--heartbeat-peer", "1.2.3.4", "--ram-size", "1000");
}

static void test_help_lists_every_option_with_default(void)
{
	struct agent_config c;
	char err[256];
	CHECK(PARSE(&c, err, "--role", "x") == -EINVAL);
	CHECK(PARSE(&c, err, "--role", "x", "--help") == 1); /* help wins */
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	REQUIRE(f);
	config_usage(f);
	fclose(f);
	const char *names[] = { "--role", "--config", "--qmp-socket", "--ram-file", "--ram-size",
				"--repl-addr", "--heartbeat-bind", "--heartbeat-peer",
				"--heartbeat-interval", "--heartbeat-misses", "--control-socket",
				"--max-interval", "--min-interval", "--fence-cmd",
				"--fence-timeout", "--connect-timeout", "--log-level", "--help",
				"--no-net", "--net-tap", "--net-bridge", "--net-queue-out",
				"--net-queue-in", "--net-compare-timeout", "--net-link-port",
				"--net-setup", "--backend", "--domid", "--xen-helper",
				"--disk-replication", "--xen-store-evtchn", "--xen-console-evtchn",
				"--xen-store-domid", "--xen-console-domid" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		CHECK(strstr(buf, names[i]) != NULL);
	CHECK(strstr(buf, "default: 2000") != NULL);
	CHECK(strstr(buf, "default: 20\n") != NULL);
	CHECK(strstr(buf, "default: 50\n") != NULL);
	CHECK(strstr(buf, "default: 6\n") != NULL);
	CHECK(strstr(buf, "default: " CONFIG_DEFAULT_CONTROL) != NULL);
	/* One "default:" line per option but --help. */
	int n = 0;
	for (const char *p = buf; (p = strstr(p, "default:")); p++)
		n++;
	CHECK_EQ(n, 33);
	CHECK(strstr(buf, "--backend qemu|xen") && strstr(buf, "default: qemu\n"));
	CHECK(strstr(buf, "--disk-replication on|off") && strstr(buf, "default: off\n"));
	CHECK(strstr(buf, "default: colo-xen-helper next to colo-agent") != NULL);
	free(buf);
}

static void test_addr_parse(void)
{
	struct colo_addr a;
	char buf[80];
	REQUIRE(colo_addr_parse("10.77.0.2:7700", 1, &a) == 0);
	CHECK(a.sa.ss_family == AF_INET && a.port == 7700);
	CHECK(!strcmp(colo_addr_str(&a, buf, sizeof(buf)), "10.77.0.2:7700"));
	REQUIRE(colo_addr_parse("[::1]:80", 1, &a) == 0);
	CHECK(a.sa.ss_family == AF_INET6 && a.port == 80);
	CHECK(!strcmp(colo_addr_str(&a, buf, sizeof(buf)), "[::1]:80"));
	REQUIRE(colo_addr_parse("fe80::1", 9, &a) == 0);
	CHECK(a.port == 9);
	CHECK(colo_addr_parse("[::1", 1, &a) < 0);
	CHECK(colo_addr_parse("[::1]x", 1, &a) < 0);
	CHECK(colo_addr_parse("1.2.3.4:", 1, &a) < 0);
	CHECK(colo_addr_parse("1.2.3.4:0", 1, &a) < 0);
	CHECK(colo_addr_parse("1.2.3.4:+5", 1, &a) < 0);
	CHECK(colo_addr_parse("1.2.3.4", 0, &a) < 0);
	CHECK(colo_addr_parse("", 1, &a) < 0);
	CHECK(colo_addr_parse("localhost:5", 1, &a) < 0);
}

/* The net path is off unless a tap or bridge is named, and --no-net wins. */
static void test_net_options(void)
{
	struct agent_config c;
	char err[256] = "";
	REQUIRE(PARSE(&c, err, "--role", "primary") == 0);
	CHECK(!config_net_enabled(&c));
	CHECK_EQ(c.net_queue_out, CONFIG_DEFAULT_NET_QUEUE_OUT);
	CHECK_EQ(c.net_queue_in, CONFIG_DEFAULT_NET_QUEUE_IN);
	CHECK_EQ(c.net_timeout_ms, 50);
	CHECK_EQ(c.net_port, 7702);
	REQUIRE(PARSE(&c, err, "--role", "primary", "--net-tap", "vm1", "--net-queue-in", "7",
		      "--net-compare-timeout", "20") == 0);
	CHECK(config_net_enabled(&c));
	CHECK(!strcmp(c.net_tap, "vm1"));
	CHECK_EQ(c.net_queue_in, 7);
	CHECK_EQ(c.net_timeout_ms, 20);
	REQUIRE(PARSE(&c, err, "--net-bridge", "br1", "--no-net", "--role", "secondary") == 0);
	CHECK(c.no_net && !config_net_enabled(&c));
	REQUIRE(PARSE(&c, err, "--net-bridge", "br1", "--no-net=no", "--role", "secondary") == 0);
	CHECK(config_net_enabled(&c));
	CHECK(PARSE(&c, err, "--no-net=maybe") < 0 && strstr(err, "yes|no"));
	REQUIRE(PARSE(&c, err, "--role", "primary", "--ram-file", "/x", "--repl-addr", "10.0.0.2",
		      "--heartbeat-peer", "10.0.0.2", "--net-tap", "vm0", "--net-queue-out",
		      "1") == 0);
	CHECK(config_validate(&c, err, sizeof(err)) < 0 && strstr(err, "must differ"));
}

/* --backend xen: --domid required, no --ram-file; qemu ignores the Xen options but
 * refuses disk replication it cannot do. */
static void test_xen_options(void)
{
	struct agent_config c;
	char err[256] = "";
	REQUIRE(PARSE(&c, err, "--role", "primary", "--repl-addr", "10.0.0.2",
		      "--heartbeat-peer", "10.0.0.2") == 0);
	CHECK_EQ(c.backend, BACKEND_QEMU);
	CHECK(!c.disk_repl && !c.domid_set && !c.xen_helper[0]);
	CHECK(config_validate(&c, err, sizeof(err)) < 0 && strstr(err, "--ram-file is required"));

	REQUIRE(PARSE(&c, err, "--role", "primary", "--backend", "xen", "--repl-addr", "10.0.0.2",
		      "--heartbeat-peer", "10.0.0.2") == 0);
	CHECK_EQ(c.backend, BACKEND_XEN);
	CHECK(config_validate(&c, err, sizeof(err)) < 0);
	CHECK(strstr(err, "--backend xen needs --domid") != NULL);
	fprintf(stderr, "    %s\n", err);

	REQUIRE(PARSE(&c, err, "--role", "secondary", "--backend=xen", "--domid", "7",
		      "--heartbeat-peer", "10.0.0.1", "--disk-replication", "on", "--xen-helper",
		      "/opt/colo/helper", "--ram-size", "1G") == 0);
	/* A Xen secondary must name the domain's xenstore event channel. */
	CHECK(config_validate(&c, err, sizeof(err)) < 0 && strstr(err, "--xen-store-evtchn"));
	REQUIRE(PARSE(&c, err, "--role", "secondary", "--backend=xen", "--domid", "7",
		      "--heartbeat-peer", "10.0.0.1", "--disk-replication", "on", "--xen-helper",
		      "/opt/colo/helper", "--ram-size", "1G", "--xen-store-evtchn", "5",
		      "--xen-console-evtchn", "6", "--xen-store-domid", "3") == 0);
	CHECK(c.xen_store_evtchn == 5 && c.xen_console_evtchn == 6 && c.xen_store_domid == 3 &&
	      c.xen_console_domid == 0);
	CHECK(c.domid_set && c.domid == 7 && c.disk_repl);
	CHECK(!strcmp(c.xen_helper, "/opt/colo/helper"));
	CHECK(config_validate(&c, err, sizeof(err)) == 0); /* no --ram-file needed */
	CHECK(!strcmp(backend_kind_name(c.backend), "xen"));
	REQUIRE(PARSE(&c, err, "--role", "secondary", "--backend=xen", "--domid", "7",
		      "--heartbeat-peer", "10.0.0.1") == 0);
	CHECK(config_validate(&c, err, sizeof(err)) < 0 && strstr(err, "needs --ram-size"));

	/* qemu: --domid and --xen-helper are ignored, disk replication refused. */
	REQUIRE(PARSE(&c, err, "--role", "secondary", "--domid", "7", "--xen-helper", "/x",
		      "--ram-file", "/r", "--heartbeat-peer", "10.0.0.1") == 0);
	CHECK_EQ(c.backend, BACKEND_QEMU);
	CHECK(config_validate(&c, err, sizeof(err)) == 0);
	REQUIRE(PARSE(&c, err, "--role", "secondary", "--disk-replication", "on", "--ram-file",
		      "/r", "--heartbeat-peer", "10.0.0.1") == 0);
	CHECK(config_validate(&c, err, sizeof(err)) < 0 && strstr(err, "qemu backend has none"));

	CHECK(PARSE(&c, err, "--backend", "kvm") < 0 && strstr(err, "neither qemu nor xen"));
	CHECK(PARSE(&c, err, "--domid", "0") < 0 && strstr(err, "dom0"));
	CHECK(PARSE(&c, err, "--domid", "32752") < 0 && strstr(err, "--domid"));
	CHECK(PARSE(&c, err, "--domid", "-1") < 0);
	CHECK(PARSE(&c, err, "--xen-store-evtchn", "0") < 0);
	CHECK(PARSE(&c, err, "--xen-console-domid", "32752") < 0);
	CHECK(PARSE(&c, err, "--disk-replication", "yes") < 0 && strstr(err, "on nor off"));
	CHECK(PARSE(&c, err, "--disk-replication") < 0 && strstr(err, "needs a value"));
	CHECK(PARSE(&c, err, "--domid", "32751") == 0 && c.domid == 32751);

	/* The same from a file. */
	char path[] = "/tmp/colo-config-XXXXXX";
	int fd = mkstemp(path);
	REQUIRE(fd >= 0);
	const char *text = "backend = xen\ndomid = 12\ndisk-replication = off\n";
	REQUIRE(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	REQUIRE(PARSE(&c, err, "--config", path, "--disk-replication", "on") == 0);
	CHECK(c.backend == BACKEND_XEN && c.domid == 12 && c.disk_repl);
	unlink(path);
}

static const struct test tests[] = {
	TEST(test_xen_options),
	TEST(test_net_options),
	TEST(test_defaults_and_flags),
	TEST(test_file_and_precedence),
	TEST(test_bad_values),
	TEST(test_help_lists_every_option_with_default),
	TEST(test_addr_parse),
	{ 0 },
};
TEST_MAIN(tests)
