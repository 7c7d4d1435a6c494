/*
 * colo-guestd: the services of the COLO rig's test guest, one static binary.
 *
 *   colo-guestd [-b] echo PORT        TCP echo: every byte received is sent back
 *   colo-guestd [-b] udp-echo PORT    UDP echo: every datagram is sent back
 *   colo-guestd [-b] random PORT      TCP: each line received is answered by a
 *                                     line of fresh random hex bytes (16 bytes,
 *                                     or N bytes if the line is a number N,
 *                                     1..2048)
 *   colo-guestd [-b] dirty MBPS MIB   dirty MBPS MiB/s (may be fractional) of a
 *                                     MIB MiB buffer, page by page, in ~10 ms
 *                                     slices
 *
 * -b: go to the background once ready (socket listening, buffer allocated);
 * the foreground process then exits 0, so a script that runs it in sequence
 * knows the service is up when it returns.
 *
 * The TCP services run one poll() loop over non-blocking sockets: many
 * concurrent clients, back-pressure (a client is not read while its output is
 * pending), and any socket error (reset, broken pipe) closes only that client.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef GRND_INSECURE
#define GRND_INSECURE 0x0004
#endif

#define PROG "colo-guestd"

static bool background;

static _Noreturn void die(const char *fmt, const char *arg)
{
	fprintf(stderr, PROG ": ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	exit(1);
}

static _Noreturn void usage(void)
{
	fprintf(stderr,
		"usage: " PROG " [-b] echo PORT | udp-echo PORT | random PORT | dirty MBPS MIB\n");
	exit(2);
}

static uint16_t parse_port(const char *s)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v == 0 || v > 65535)
		die("bad port '%s'", s);
	return (uint16_t)v;
}

/* Called when the service is ready: in -b mode the parent exits here. */
static void ready(void)
{
	fflush(stdout);
	fflush(stderr);
	if (!background)
		return;
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid > 0)
		_exit(0);
	setsid();
	int fd = open("/dev/null", O_RDONLY);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		if (fd != STDIN_FILENO)
			close(fd);
	}
}

static int bind_socket(int type, uint16_t port)
{
	int fd = socket(AF_INET, type | SOCK_CLOEXEC | (type == SOCK_STREAM ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_ANY) };
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("bind: %s", strerror(errno));
	if (type == SOCK_STREAM && listen(fd, SOMAXCONN) < 0)
		die("listen: %s", strerror(errno));
	return fd;
}

/* ---------------------------------------------------------------- TCP --- */

enum mode { MODE_ECHO, MODE_RANDOM };

#define OUT_CAP 16384		/* pending output per client */
#define IN_CAP 4096		/* random: longest line kept (longer ones are split) */
#define RAND_MAX_BYTES 2048
#define REPLY_MAX (2 * RAND_MAX_BYTES + 1)

struct conn {
	int fd;
	bool eof;		/* peer shut down its sending side */
	size_t out_off, out_len;	/* pending output: out[out_off, out_len) */
	size_t in_len;
	unsigned char out[OUT_CAP];
	unsigned char in[IN_CAP];	/* MODE_RANDOM only */
};

static void compact_out(struct conn *c)
{
	if (c->out_off == 0)
		return;
	memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
	c->out_len -= c->out_off;
	c->out_off = 0;
}

static bool want_read(const struct conn *c, enum mode mode)
{
	if (c->eof)
		return false;
	if (mode == MODE_ECHO)
		return c->out_len - c->out_off < OUT_CAP;
	return c->in_len < IN_CAP;
}

static void random_reply(struct conn *c, const unsigned char *line, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char bytes[RAND_MAX_BYTES];
	size_t n = 16;

	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
		len--;
	if (len > 0 && len <= 4) {
		size_t v = 0, i;
		for (i = 0; i < len && line[i] >= '0' && line[i] <= '9'; i++)
			v = v * 10 + (size_t)(line[i] - '0');
		if (i == len && v >= 1 && v <= RAND_MAX_BYTES)
			n = v;
	}
	size_t got = 0;
	while (got < n) {
		ssize_t r = getrandom(bytes + got, n - got, GRND_INSECURE);
		if (r < 0 && errno == EINVAL)	/* kernel without GRND_INSECURE */
			r = getrandom(bytes + got, n - got, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			die("getrandom: %s", strerror(errno));
		}
		got += (size_t)r;
	}
	unsigned char *o = c->out + c->out_len;
	for (size_t i = 0; i < n; i++) {
		*o++ = (unsigned char)hex[bytes[i] >> 4];
		*o++ = (unsigned char)hex[bytes[i] & 15];
	}
	*o++ = '\n';
	c->out_len = (size_t)(o - c->out);
}

/* Turn complete input lines into replies while there is room for them. */
static void random_process(struct conn *c)
{
	size_t start = 0;
	for (;;) {
		compact_out(c);
		if (OUT_CAP - c->out_len < REPLY_MAX)
			break;
		unsigned char *nl = memchr(c->in + start, '\n', c->in_len - start);
		size_t len;
		if (nl)
			len = (size_t)(nl - (c->in + start));
		else if (c->in_len - start == IN_CAP || (c->eof && c->in_len > start))
			len = c->in_len - start;	/* overlong line, or last line without '\n' */
		else
			break;
		random_reply(c, c->in + start, len);
		start += nl ? len + 1 : len;
	}
	if (start > 0) {
		memmove(c->in, c->in + start, c->in_len - start);
		c->in_len -= start;
	}
}

/* Returns false if the connection must be closed. */
static bool conn_flush(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK;
		}
		c->out_off += (size_t)w;
	}
	c->out_off = c->out_len = 0;
	return true;
}

static bool conn_read(struct conn *c, enum mode mode)
{
	unsigned char *dst;
	size_t room;

	if (mode == MODE_ECHO) {
		compact_out(c);
		dst = c->out + c->out_len;
		room = OUT_CAP - c->out_len;
	} else {
		dst = c->in + c->in_len;
		room = IN_CAP - c->in_len;
	}
	if (room == 0)
		return true;
	ssize_t r;
	do
		r = recv(c->fd, dst, room, MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK;
	if (r == 0)
		c->eof = true;
	else if (mode == MODE_ECHO)
		c->out_len += (size_t)r;
	else
		c->in_len += (size_t)r;
	return true;
}

/* Handle poll events of one client; returns false if it must be closed. */
static bool conn_event(struct conn *c, short revents, enum mode mode)
{
	if (revents & POLLNVAL)
		return false;
	if (revents & POLLERR) {
		/* Reset or other socket error: nothing more can be delivered. */
		return false;
	}
	if ((revents & (POLLIN | POLLHUP)) && want_read(c, mode)) {
		if (!conn_read(c, mode))
			return false;
	}
	if (mode == MODE_RANDOM)
		random_process(c);
	if (!conn_flush(c))
		return false;
	if (c->eof && c->out_off == c->out_len && (mode == MODE_ECHO || c->in_len == 0)) {
		shutdown(c->fd, SHUT_WR);
		return false;
	}
	if ((revents & POLLHUP) && !(revents & POLLIN) && c->out_off < c->out_len)
		return false;	/* both directions gone, output undeliverable */
	return true;
}

static double now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static _Noreturn void tcp_server(enum mode mode, uint16_t port)
{
	int lfd = bind_socket(SOCK_STREAM, port);
	raise_fd_limit();
	printf(PROG ": %s: listening on tcp/%u\n", mode == MODE_ECHO ? "echo" : "random", port);
	ready();

	struct conn **conns = NULL;
	struct pollfd *pfd = NULL;
	size_t n = 0, cap = 0;
	double accept_resume = 0;	/* accept() paused (out of fds/memory) until then */

	for (;;) {
		if (n + 1 > cap) {
			cap = cap ? cap * 2 : 64;
			conns = realloc(conns, cap * sizeof(*conns));
			pfd = realloc(pfd, (cap + 1) * sizeof(*pfd));
			if (!conns || !pfd)
				die("%s", "out of memory");
		}
		bool accepting = accept_resume == 0 || now_sec() >= accept_resume;
		if (accepting)
			accept_resume = 0;
		pfd[0] = (struct pollfd){ .fd = accepting ? lfd : -1, .events = POLLIN };
		for (size_t i = 0; i < n; i++) {
			short ev = 0;
			if (want_read(conns[i], mode))
				ev |= POLLIN;
			if (conns[i]->out_off < conns[i]->out_len)
				ev |= POLLOUT;
			pfd[i + 1] = (struct pollfd){ .fd = conns[i]->fd, .events = ev };
		}
		size_t polled = n;
		int r = poll(pfd, polled + 1, accepting ? -1 : 100);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			die("poll: %s", strerror(errno));
		}

		for (size_t i = 0; i < polled; i++) {
			if (!pfd[i + 1].revents)
				continue;
			if (!conn_event(conns[i], pfd[i + 1].revents, mode)) {
				close(conns[i]->fd);
				free(conns[i]);
				conns[i] = NULL;
			}
		}
		size_t k = 0;	/* drop closed clients, keep order */
		for (size_t i = 0; i < n; i++)
			if (conns[i])
				conns[k++] = conns[i];
		n = k;

		if (!(pfd[0].revents & POLLIN))
			continue;
		/* Accept what is queued, up to the room in conns[] (grown next round). */
		while (n < cap) {
			int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (fd < 0) {
				if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
					continue;
				if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
				    errno == ENOMEM)
					accept_resume = now_sec() + 0.1;
				break;	/* EAGAIN, or paused */
			}
			struct conn *c = malloc(mode == MODE_ECHO ? offsetof(struct conn, in)
								  : sizeof(struct conn));
			if (!c) {
				close(fd);
				accept_resume = now_sec() + 0.1;
				break;
			}
			c->fd = fd;
			c->eof = false;
			c->out_off = c->out_len = c->in_len = 0;
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			conns[n++] = c;
		}
	}
}

/* ---------------------------------------------------------------- UDP --- */

static _Noreturn void udp_echo(uint16_t port)
{
	int fd = bind_socket(SOCK_DGRAM, port);
	static unsigned char buf[65536];
	printf(PROG ": udp-echo: listening on udp/%u\n", port);
	ready();
	for (;;) {
		struct sockaddr_in from;
		socklen_t flen = sizeof(from);
		ssize_t r = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
		if (r < 0)
			continue;	/* EINTR, ICMP errors from earlier sends, ... */
		sendto(fd, buf, (size_t)r, 0, (struct sockaddr *)&from, flen);
	}
}

/* -------------------------------------------------------------- dirty --- */

#define PAGE 4096UL

static _Noreturn void dirty(const char *mbps_s, const char *mib_s)
{
	char *end;
	double mbps = strtod(mbps_s, &end);
	if (end == mbps_s || *end || !isfinite(mbps) || mbps < 0 || mbps > 1e6)
		die("bad rate '%s' (MiB/s)", mbps_s);
	errno = 0;
	unsigned long mib = strtoul(mib_s, &end, 10);
	if (errno || end == mib_s || *end || mib == 0 || mib > (1UL << 20))
		die("bad size '%s' (MiB)", mib_s);

	size_t npages = mib * (1024 * 1024 / PAGE);
	unsigned char *buf = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (buf == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	for (size_t i = 0; i < npages; i++)	/* make every page present and non-zero */
		memset(buf + i * PAGE, 0x5a, PAGE);

	double pages_per_sec = mbps * (1024.0 * 1024.0 / (double)PAGE);
	printf(PROG ": dirty: started, %g MiB/s (%.0f pages/s) over %lu MiB\n", mbps,
	       pages_per_sec, mib);
	ready();

	/* Pages due by now = elapsed * rate; after a long stall (VM paused, host
	 * busy) the backlog beyond ~100 ms is dropped rather than written in a burst. */
	const long slice_ns = 10 * 1000 * 1000;
	uint64_t max_backlog = (uint64_t)(pages_per_sec / 10) + 1;
	uint64_t done = 0, seq = 0;
	size_t cursor = 0;
	struct timespec start, next;
	clock_gettime(CLOCK_MONOTONIC, &start);
	next = start;
	for (;;) {
		next.tv_nsec += slice_ns;
		if (next.tv_nsec >= 1000000000L) {
			next.tv_nsec -= 1000000000L;
			next.tv_sec++;
		}
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		double elapsed = (double)(now.tv_sec - start.tv_sec) +
				 (double)(now.tv_nsec - start.tv_nsec) / 1e9;
		uint64_t target = (uint64_t)(elapsed * pages_per_sec);
		if (target > done + max_backlog)
			done = target - max_backlog;
		for (; done < target; done++) {
			unsigned char *p = buf + cursor * PAGE;
			seq++;
			memset(p, (int)(seq & 0xff), PAGE);
			memcpy(p, &seq, sizeof(seq));
			__asm__ volatile("" : : "r"(p) : "memory");
			if (++cursor == npages)
				cursor = 0;
		}
		/* Fell more than 100 ms behind the schedule: restart it from now. */
		double lag = (double)(now.tv_sec - next.tv_sec) +
			     (double)(now.tv_nsec - next.tv_nsec) / 1e9;
		if (lag > 0.1)
			next = now;
	}
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	int i = 1;
	if (i < argc && strcmp(argv[i], "-b") == 0) {
		background = true;
		i++;
	}
	if (i >= argc)
		usage();
	const char *cmd = argv[i++];
	int left = argc - i;
	if (strcmp(cmd, "echo") == 0 && left == 1)
		tcp_server(MODE_ECHO, parse_port(argv[i]));
	if (strcmp(cmd, "random") == 0 && left == 1)
		tcp_server(MODE_RANDOM, parse_port(argv[i]));
	if (strcmp(cmd, "udp-echo") == 0 && left == 1)
		udp_echo(parse_port(argv[i]));
	if (strcmp(cmd, "dirty") == 0 && left == 2)
		dirty(argv[i], argv[i + 1]);
	usage();
}
