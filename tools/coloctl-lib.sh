# shellcheck shell=bash
# coloctl-lib.sh - reading an agent's state through coloctl, for scripts (tools/demo.sh,
# the integration tests' agent-lib.sh, bench/run.sh). Sourced, not run; needs $COLOCTL.

# state CTL: the agent's state behind control socket CTL ("" if it does not answer).
state() {
	"$COLOCTL" status --json --socket "$1" 2>/dev/null |
		sed -n 's/^{"ok":true,"status":{"role":"[a-z]*","state":"\([a-z-]*\)".*/\1/p'
}
