#!/usr/bin/env bash
# Times ofmprobe's full check of a lab range against what nmap's SMB and NetBIOS scripts plus smbclient need to learn
# the same facts: the ports, NetBIOS names, SMB dialects and signing, and whether OFMLOG$ mounts with OFMNT.LOG,
# OFMNT.ADR and IPC$ reachable. RUNS runs each (default 3), medians of wall time, from the lab's scanner namespace.
#
#   bash testdata/lab/bench-smb.sh [TARGET]      default target: 198.18.0.0/24
#
# The lab must be up (bash testdata/lab/lab.sh up). The target must be a lab address (198.18.0.0/15).
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS=${RUNS:-3}
NS=ofmlab-scan
target=${1:-198.18.0.0/24}
case "$target" in
198.18.* | 198.19.*) ;;
*) echo "bench-smb.sh: $target is not a lab address (198.18.0.0/15): refusing" >&2; exit 2 ;;
esac
bash testdata/lab/lab.sh status >/dev/null || { echo "bench-smb.sh: the lab is not up" >&2; exit 2; }

bin=$(mktemp -d)/ofmprobe
go build -o "$bin" ./cmd/ofmprobe
trap 'rm -rf "$(dirname "$bin")"' EXIT

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# wall CMD... prints the seconds CMD took in the scanner namespace (its exit status is ignored).
wall() {
	local t0 t1
	t0=$(date +%s.%N)
	ip netns exec "$NS" timeout 900 "$@" >/dev/null 2>&1 || true
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}'
}

# The hosts with TCP 445 open, from one nmap run: smbclient is run on each, one after the other, as a person would.
smbhosts=$(ip netns exec "$NS" nmap -n -Pn -sT -T4 -p 445 --open -oG - "$target" 2>/dev/null | awk '/445\/open/ {print $2}')
smbclient_all() {
	local h
	for h in $smbhosts; do
		timeout 20 smbclient "//$h/OFMLOG\$" -N -t 5 -c 'allinfo OFMNT.LOG; allinfo OFMNT.ADR' || true
		timeout 20 smbclient "//$h/IPC\$" -N -t 5 -c 'exit' || true
	done
}
export -f smbclient_all
export smbhosts

o=() n=() s=()
for ((i = 0; i < RUNS; i++)); do
	o+=("$(wall "$bin" scan --format json --output /dev/null "$target")")
	n+=("$(wall nmap -n -Pn -sT -sU -T4 -p T:53,135,139,445,U:67,137,138,445 --script smb-protocols,smb2-security-mode,smb-security-mode,nbstat "$target")")
	s+=("$(wall bash -c smbclient_all)")
done
ow=$(median "${o[@]}") nw=$(median "${n[@]}") sw=$(median "${s[@]}")
echo "| $target, $RUNS runs, median wall seconds | |"
echo "|---|---|"
echo "| ofmprobe full check (ports, NBSTAT, session, SMB negotiate, OFMLOG\$, files, IPC\$, RPC): \`ofmprobe scan $target\` | $ow |"
echo "| nmap: \`nmap -n -Pn -sT -sU -T4 -p T:53,135,139,445,U:67,137,138,445 --script smb-protocols,smb2-security-mode,smb-security-mode,nbstat $target\` | $nw |"
echo "| smbclient on each of the $(wc -w <<<"$smbhosts") hosts with 445 open: \`smbclient //HOST/OFMLOG\$ -N -c 'allinfo OFMNT.LOG; allinfo OFMNT.ADR'\` and \`//HOST/IPC\$\` | $sw |"
echo "| nmap + smbclient / ofmprobe | $(awk -v a="$nw" -v b="$sw" -v c="$ow" 'BEGIN {printf "%.1fx", (a + b) / c}') |"
