/* fence.c - the fence command: posix_spawn in a new session, a pidfd on the loop, a
 * timer that kills the whole session. */
#include "colo/fence.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/loop.h"

extern char **environ;

struct fence {
	struct loop *loop;
	pid_t pid;
	int pidfd;
	uint64_t timer;
	unsigned timeout_ms;
	bool timed_out, done, in_cb, freed;
	uint64_t started_ms;
	fence_done_cb cb;
	void *arg;
};

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static void finish(struct fence *f, int status)
{
	char why[128];
	int ok = 0;
	if (f->timed_out)
		snprintf(why, sizeof(why), "timed out after %u ms (its session was killed)",
			 f->timeout_ms);
	else if (WIFEXITED(status))
		snprintf(why, sizeof(why), "exited with status %d", WEXITSTATUS(status));
	else
		snprintf(why, sizeof(why), "killed by signal %d", WTERMSIG(status));
	ok = !f->timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0;
	loop_del_fd(f->loop, f->pidfd);
	close(f->pidfd);
	f->pidfd = -1;
	loop_timer_cancel(f->loop, f->timer);
	f->done = true;
	log_msg(ok ? LOG_INFO : LOG_ERR, "fence command (pid %d) %s after %llu ms", f->pid, why,
		(unsigned long long)(mono_ms() - f->started_ms));
	f->in_cb = true;
	f->cb(f, ok, why, f->arg);
	f->in_cb = false;
	if (f->freed)
		free(f);
}

static void on_exit_fd(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct fence *f = arg;
	int status;
	pid_t r = waitpid(f->pid, &status, WNOHANG);
	if (r == 0)
		return; /* not yet (spurious wakeup) */
	if (r < 0) {
		log_err("fence command (pid %d): waitpid failed: %s", f->pid, strerror(errno));
		status = 0xff00; /* treat as "exited 255": a failure */
	}
	finish(f, status);
}

static int64_t on_timeout(struct loop *loop, uint64_t id, void *arg)
{
	struct fence *f = arg;
	f->timed_out = true;
	log_err("fence command (pid %d) still running after %u ms: killing its session", f->pid,
		f->timeout_ms);
	kill(-f->pid, SIGKILL); /* setsid: the group id is its pid */
	return LOOP_TIMER_DONE; /* the pidfd reports the exit */
}

/* environ + extra, for the child. The strings are borrowed. */
static char **build_env(char *const extra[])
{
	size_t n = 0, m = 0;
	while (environ && environ[n])
		n++;
	while (extra && extra[m])
		m++;
	char **env = calloc(n + m + 1, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++)
		env[i] = environ[i];
	for (size_t i = 0; i < m; i++)
		env[n + i] = extra[i];
	return env;
}

static int spawn(const char *cmd, char *const extra[], pid_t *pid)
{
	posix_spawnattr_t at;
	posix_spawn_file_actions_t fa;
	sigset_t none, dflt;
	char **env = build_env(extra);
	int r = env ? 0 : ENOMEM;
	if (r)
		return -r;
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_init(&fa);
	sigemptyset(&none);
	sigemptyset(&dflt);
	sigaddset(&dflt, SIGTERM);
	sigaddset(&dflt, SIGINT);
	sigaddset(&dflt, SIGPIPE);
	sigaddset(&dflt, SIGCHLD);
	/* A session of its own, so a timeout can kill everything the command started;
	 * a clean signal state, whatever the agent blocked for its signalfd. */
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
					      POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dflt);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, 2, 1);
	char *argv[] = { "/bin/sh", "-c", (char *)cmd, NULL };
	r = posix_spawn(pid, "/bin/sh", &fa, &at, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	free(env);
	return -r;
}

int fence_run(struct loop *loop, const char *cmd, unsigned timeout_ms, char *const env[],
	      fence_done_cb cb, void *arg, struct fence **out)
{
	struct fence *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	*f = (struct fence){ .loop = loop, .pidfd = -1, .timeout_ms = timeout_ms, .cb = cb,
			     .arg = arg, .started_ms = mono_ms() };
	int r = spawn(cmd, env, &f->pid);
	if (r < 0) {
		log_err("fence command '%s' could not be started: %s", cmd, strerror(-r));
		free(f);
		return r;
	}
	f->pidfd = pidfd_open_(f->pid);
	if (f->pidfd < 0 || loop_add_fd(loop, f->pidfd, EPOLLIN, on_exit_fd, f) < 0 ||
	    loop_timer_add(loop, timeout_ms, on_timeout, f, &f->timer) < 0) {
		r = f->pidfd < 0 ? -errno : -ENOMEM;
		log_err("fence command '%s': cannot watch pid %d: %s; killed it", cmd, f->pid,
			strerror(-r));
		fence_free(f);
		return r;
	}
	log_info("fence command started (pid %d, timeout %u ms): %s", f->pid, timeout_ms, cmd);
	*out = f;
	return 0;
}

void fence_free(struct fence *f)
{
	if (!f)
		return;
	if (f->in_cb) {
		f->freed = true;
		return;
	}
	if (!f->done) {
		kill(-f->pid, SIGKILL);
		waitpid(f->pid, NULL, 0); /* SIGKILL: prompt */
		if (f->pidfd >= 0) {
			loop_del_fd(f->loop, f->pidfd);
			close(f->pidfd);
		}
		loop_timer_cancel(f->loop, f->timer);
	}
	free(f);
}
