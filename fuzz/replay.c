/* replay.c - runs a fuzz target over its stored corpus without libFuzzer, so
 * make test (gcc, and SAN=1) replays every input that ever mattered.
 * The corpus lives in fuzz/corpus/<target>/; the target name is argv[0]'s basename.
 * Prints "PASS <target>: corpus (N inputs)" in the test-runner format. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0, n;
	uint8_t chunk[65536];
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (len + n > cap) {
			cap = (len + n) * 2;
			uint8_t *p = realloc(buf, cap);
			if (!p) {
				free(buf);
				fclose(f);
				return -1;
			}
			buf = p;
		}
		memcpy(buf + len, chunk, n);
		len += n;
	}
	fclose(f);
	/* Copy into an exact-size allocation so ASan catches reads past the input. */
	uint8_t *exact = malloc(len ? len : 1);
	if (!exact) {
		free(buf);
		return -1;
	}
	if (len)
		memcpy(exact, buf, len);
	free(buf);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	return 0;
}

int main(int argc, char **argv)
{
	const char *name = strrchr(argv[0], '/');
	name = name ? name + 1 : argv[0];
	char dir[4096];
	if (argc > 1)
		snprintf(dir, sizeof(dir), "%s", argv[1]);
	else
		snprintf(dir, sizeof(dir), "fuzz/corpus/%s", name);
	DIR *d = opendir(dir);
	if (!d) {
		printf("FAIL %s: corpus: cannot open %s (run from the source tree)\n", name, dir);
		return 1;
	}
	int count = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[8192];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (replay_file(path) < 0) {
			printf("FAIL %s: corpus: cannot read %s\n", name, path);
			closedir(d);
			return 1;
		}
		count++;
	}
	closedir(d);
	if (count == 0) {
		printf("FAIL %s: corpus: %s is empty\n", name, dir);
		return 1;
	}
	printf("PASS %s: corpus (%d inputs)\n", name, count);
	return 0;
}
