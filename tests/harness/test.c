#include "test.h"

#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Child -> parent: exit status 0 pass, 1 fail, 77 skip; the reason travels on a pipe. */
#define EXIT_SKIP 77

static int failures;
static int report_fd = -1;

static void report(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (report_fd >= 0 && n > 0 && write(report_fd, buf, strnlen(buf, sizeof(buf))) < 0) {
		/* parent shows no reason */
	}
}

void test_fail_at(const char *file, int line, const char *expr)
{
	failures++;
	fprintf(stderr, "    %s:%d: check failed: %s\n", file, line, expr);
	if (failures == 1)
		report("%s:%d: %s", file, line, expr);
}

_Noreturn void test_end_now(void)
{
	exit(failures ? 1 : 0);
}

_Noreturn void test_skip(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	report("%s", buf);
	exit(EXIT_SKIP);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static bool selected(const char *name, int argc, char **argv)
{
	if (argc < 2)
		return true;
	for (int i = 1; i < argc; i++)
		if (strstr(name, argv[i]))
			return true;
	return false;
}

static int run_one(const char *file, const struct test *t, unsigned timeout_s)
{
	int pfd[2];
	if (pipe(pfd) < 0) {
		perror("pipe");
		return 1;
	}
	fflush(NULL);
	double t0 = now_ms();
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		close(pfd[0]);
		report_fd = pfd[1];
		alarm(timeout_s);
		t->fn();
		test_end_now();
	}
	close(pfd[1]);
	char why[1024] = "";
	size_t got = 0;
	ssize_t n;
	while (got < sizeof(why) - 1 && (n = read(pfd[0], why + got, sizeof(why) - 1 - got)) > 0)
		got += (size_t)n;
	why[got] = 0;
	close(pfd[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		;
	double ms = now_ms() - t0;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		printf("PASS %s: %s (%.1f ms)\n", file, t->name, ms);
		return 0;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == EXIT_SKIP) {
		printf("SKIP %s: %s: %s\n", file, t->name, why);
		return 0;
	}
	if (WIFSIGNALED(st))
		printf("FAIL %s: %s: killed by signal %d (%s)%s%s\n", file, t->name,
		       WTERMSIG(st), WTERMSIG(st) == SIGALRM ? "timeout" : strsignal(WTERMSIG(st)),
		       why[0] ? " after " : "", why);
	else
		printf("FAIL %s: %s: %s\n", file, t->name, why[0] ? why : "exited non-zero");
	return 1;
}

int test_main(const char *file, const struct test *tests, int argc, char **argv)
{
	const char *base = strrchr(file, '/');
	base = base ? base + 1 : file;
	unsigned timeout_s = TEST_TIMEOUT_S;
	const char *env = getenv("COLO_TEST_TIMEOUT");
	if (env && atoi(env) > 0)
		timeout_s = (unsigned)atoi(env);
	int failed = 0;
	for (const struct test *t = tests; t->name; t++)
		if (selected(t->name, argc, argv))
			failed += run_one(base, t, timeout_s);
	fflush(stdout);
	return failed ? 1 : 0;
}
