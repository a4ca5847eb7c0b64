#!/usr/bin/env bash
# Times ofmprobe against nmap (and, for names, nbtscan) on the lab's own hosts, from the lab's scanner namespace:
# wall time, CPU time and peak memory, RUNS runs each (default 3), medians. Prints a Markdown table.
#
#   bash testdata/lab/bench.sh [TARGET...]      default targets: 198.18.0.0/24 198.18.16.0/20
#
# The lab must be up (bash testdata/lab/lab.sh up). Every target must be a lab address (198.18.0.0/15).
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS=${RUNS:-3}
NS=ofmlab-scan
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(198.18.0.0/24 198.18.16.0/20)
for t in "${targets[@]}"; do
	case "$t" in
	198.18.* | 198.19.*) ;;
	*) echo "bench.sh: $t is not a lab address (198.18.0.0/15): refusing" >&2; exit 2 ;;
	esac
done
[ -x /usr/bin/time ] || { echo "bench.sh: /usr/bin/time is missing (apt-get install time)" >&2; exit 2; }
bash testdata/lab/lab.sh status >/dev/null || { echo "bench.sh: the lab is not up" >&2; exit 2; }

bin=$(mktemp -d)/ofmprobe
go build -o "$bin" ./cmd/ofmprobe
out=$(mktemp)
trap 'rm -f "$out" "$bin"' EXIT

# measure LABEL CMD... runs CMD RUNS times in the scanner namespace and prints "wall cpu rss_mib" medians.
measure() {
	local i walls=() cpus=() rsss=()
	for ((i = 0; i < RUNS; i++)); do
		ip netns exec "$NS" /usr/bin/time -f '%e %U %S %M' -o "$out" timeout 600 "$@" >/dev/null 2>&1 || true
		read -r wall user sys rss < <(tail -n 1 "$out")
		walls+=("$wall")
		cpus+=("$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.2f", u + s}')")
		rsss+=("$(awk -v r="$rss" 'BEGIN {printf "%.1f", r / 1024}')")
	done
	printf '%s %s %s\n' "$(median "${walls[@]}")" "$(median "${cpus[@]}")" "$(median "${rsss[@]}")"
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "| target | tool and command | wall s | CPU s | peak RSS MiB |"
echo "|---|---|---|---|---|"
for t in "${targets[@]}"; do
	read -r w c m < <(measure "$bin" scan --format ndjson --output /dev/null "$t")
	echo "| $t | ofmprobe full check (TCP 53/135/139/445, UDP 67/138/445, NBSTAT, session): \`ofmprobe scan $t\` | $w | $c | $m |"
	read -r ow oc om < <(measure "$bin" scan --catalog testdata/bench/tcp-only.json --format ndjson --output /dev/null "$t")
	echo "| $t | ofmprobe TCP only: \`ofmprobe scan --catalog testdata/bench/tcp-only.json $t\` | $ow | $oc | $om |"
	read -r nw nc nm < <(measure nmap -n -sT -Pn -T4 -p 53,135,139,445 -oG - "$t")
	echo "| $t | nmap: \`nmap -n -sT -Pn -T4 -p 53,135,139,445 $t\` | $nw | $nc | $nm |"
	read -r sw sc sm < <(measure "$bin" scan --catalog testdata/bench/nbstat-only.json --format ndjson --output /dev/null "$t")
	names=$(ip netns exec "$NS" "$bin" scan --catalog testdata/bench/nbstat-only.json --format ndjson "$t" 2>/dev/null | grep -c '"state":"answered"' || true)
	echo "| $t | ofmprobe NetBIOS names only: \`ofmprobe scan --catalog testdata/bench/nbstat-only.json $t\` ($names hosts answered) | $sw | $sc | $sm |"
	if command -v nbtscan >/dev/null; then
		read -r bw bc bm < <(measure nbtscan "$t")
		found=$(ip netns exec "$NS" nbtscan -q "$t" 2>/dev/null | grep -c '^[0-9]' || true)
		echo "| $t | nbtscan (names only, defaults): \`nbtscan $t\` ($found hosts answered) | $bw | $bc | $bm |"
	fi
	echo "| $t | ratio nmap / ofmprobe TCP only (wall) | $(awk -v n="$nw" -v o="$ow" 'BEGIN {printf "%.1f", n / o}')x | | |"
done
