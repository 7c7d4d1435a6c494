/* main-xen-helper.c - colo-xen-helper: exec'd by the agent (checkpoint/repl.c)
 * with the agent <-> helper socketpair on fd 3 (docs/helper-protocol.md §1). The
 * agent passes its log level in COLO_LOG_LEVEL. */
#include <stdlib.h>

#include "lib/log.h"
#include "xen/xen_helper.h"

int main(void)
{
	enum log_level lvl = LOG_INFO;
	const char *env = getenv("COLO_LOG_LEVEL");
	if (env && log_parse_level(env, &lvl) < 0)
		lvl = LOG_INFO;
	log_init("colo-xen-helper", lvl);
	return xen_helper_main(3, xen_runner_main);
}
