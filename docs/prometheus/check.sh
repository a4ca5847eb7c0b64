#!/usr/bin/env bash
# Checks the Prometheus files here with promtool: the configuration (and the files it names), the alert rules,
# and the rules' unit tests. Needs promtool on PATH (Debian: apt-get install prometheus); installs nothing.
# Exits non-zero when any check fails, or when promtool warns (it only warns about a missing file_sd file).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if ! command -v promtool >/dev/null; then
	echo "check.sh: promtool not found (Debian: apt-get install prometheus)" >&2
	exit 1
fi

run() {
	local out rc=0
	out=$("$@" 2>&1) || rc=$?
	printf '%s\n\n' "$out"
	if [ "$rc" -ne 0 ]; then
		echo "check.sh: $* failed (exit $rc)" >&2
		exit "$rc"
	fi
	if grep -q WARNING <<<"$out"; then
		echo "check.sh: $* warned" >&2
		exit 1
	fi
}

run promtool check config prometheus.yml
run promtool check rules ofmprobe.rules.yml
run promtool test rules ofmprobe.rules.test.yml
