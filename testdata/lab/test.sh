#!/usr/bin/env bash
# Runs every ofmprobe test, the Samba lab included: installs what the lab needs, brings it up, runs `go test ./...`
# with the lab tests enabled, and brings the lab down again, whatever happened. Run as root from anywhere.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" -ne 0 ]; then
  echo "test.sh: the lab tests need root (network namespaces, Samba); run as root, or 'make unit' for unit tests only" >&2
  exit 2
fi

lab=testdata/lab/lab.sh
cleanup() { bash "$lab" down || echo "test.sh: lab down failed" >&2; }
trap cleanup EXIT

bash "$lab" install
bash "$lab" down >/dev/null 2>&1 || true
bash "$lab" up

# go.mod and go.sum must be tidy (a dependency raised or dropped without it fails here), and vet clean.
if ! go mod tidy -diff; then
  echo "test.sh: go.mod or go.sum is not tidy: run go mod tidy" >&2
  exit 1
fi
go vet ./...
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "test.sh: gofmt would change: $unformatted" >&2
  exit 1
fi
# The Prometheus configuration, alert rules and their unit tests in docs/ must pass promtool.
bash docs/prometheus/check.sh
log=$(mktemp)
set +e
# OFMPROBE_LAB=1 enables the lab tests (needLab in cmd/ofmprobe/lab_test.go); without it they skip.
OFMPROBE_LAB=1 go test -count=1 -timeout 30m ./... 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e

# No test output and no lab log may contain the lab's password (only the lab's own password file holds it).
labdir=${OFMLAB_DIR:-/run/ofmlab}
if [ -s "$labdir/password" ]; then
	if grep -rqaF --exclude=password -f "$labdir/password" "$log" "$labdir"; then
		echo "test.sh: the lab password appears in the test output or a lab log:" >&2
		grep -rlaF --exclude=password -f "$labdir/password" "$log" "$labdir" >&2
		rc=1
	else
		echo "test.sh: the lab password appears in no test output and no lab log"
	fi
fi
rm -f "$log"
exit "$rc"
