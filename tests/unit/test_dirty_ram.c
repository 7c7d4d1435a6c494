/* Unit tests of the agent's RAM mapping (checkpoint/ram.c). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint/ram.h"
#include "tests/harness/test.h"

#define PS RAM_PAGE_SIZE
static char path[64];

static void cleanup(void)
{
	if (path[0])
		unlink(path);
}

static int make_ram(uint64_t size)
{
	snprintf(path, sizeof(path), "/dev/shm/colo-test-ram-XXXXXX");
	int fd = mkstemp(path);
	REQUIRE(fd >= 0);
	atexit(cleanup);
	REQUIRE(ftruncate(fd, (off_t)size) == 0);
	return fd;
}

static void test_read_mapping_sees_the_file(void)
{
	struct ram_map *m = NULL;
	int fd = make_ram(16 * PS);
	REQUIRE(pwrite(fd, "guest", 5, 3 * PS) == 5);
	REQUIRE(ram_map_open(path, 16 * PS, RAM_READ, &m) == 0);
	CHECK(memcmp(ram_map_page(m, 3), "guest", 5) == 0);
	CHECK(ram_map_page(m, 15) != NULL);
	CHECK(ram_map_page(m, 16) == NULL);
	CHECK_EQ(ram_map_size(m), 16 * PS);
	CHECK_EQ(ram_map_npages(m), 16);
	REQUIRE(pwrite(fd, "later", 5, 15 * PS) == 5); /* shared, not a copy */
	CHECK(memcmp(ram_map_page(m, 15), "later", 5) == 0);
	/* Read-only: a stray write by the primary's agent faults, the guest is safe. */
	fflush(NULL);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		*(volatile char *)ram_map_page(m, 0) = 1;
		_exit(0);
	}
	int st;
	REQUIRE(waitpid(pid, &st, 0) == pid);
	CHECK(WIFSIGNALED(st) && (WTERMSIG(st) == SIGSEGV || WTERMSIG(st) == SIGBUS));
	ram_map_close(m);
	close(fd);
}

static void test_write_mapping_reaches_the_file(void)
{
	struct ram_map *m = NULL;
	char buf[6] = "";
	int fd = make_ram(4 * PS);
	REQUIRE(ram_map_open(path, 4 * PS, RAM_WRITE, &m) == 0);
	memcpy(ram_map_page(m, 2), "apply", 5);
	REQUIRE(pread(fd, buf, 5, 2 * PS) == 5);
	CHECK(strcmp(buf, "apply") == 0);
	ram_map_close(m);
	close(fd);
}

static void test_wrong_size_or_file_is_refused(void)
{
	struct ram_map *m = NULL;
	int fd = make_ram(8 * PS);
	CHECK_EQ(ram_map_open(path, 16 * PS, RAM_READ, &m), -EINVAL);
	CHECK_EQ(ram_map_open(path, 4 * PS, RAM_WRITE, &m), -EINVAL);
	CHECK_EQ(ram_map_open(path, 8 * PS + 1, RAM_READ, &m), -EINVAL);
	CHECK_EQ(ram_map_open(path, 0, RAM_READ, &m), -EINVAL);
	CHECK_EQ(ram_map_open("/nonexistent/ram", 8 * PS, RAM_READ, &m), -ENOENT);
	CHECK_EQ(ram_map_open("/dev/shm", 8 * PS, RAM_READ, &m), -EINVAL); /* a directory */
	CHECK(m == NULL);
	ram_map_close(NULL);
	close(fd);
}

static const struct test tests[] = {
	TEST(test_read_mapping_sees_the_file),
	TEST(test_write_mapping_reaches_the_file),
	TEST(test_wrong_size_or_file_is_refused),
	{ 0 },
};

TEST_MAIN(tests)
