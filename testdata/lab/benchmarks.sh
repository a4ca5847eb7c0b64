#!/usr/bin/env bash
# Times ofmprobe's full check, nmap (TCP connect scan of 135, 139, 445) and nbtscan (NetBIOS names) on the lab's bulk
# ranges, from the lab's scanner namespace, and scores each tool's output against the ranges' known truth. RUNS runs
# per tool (default 3); medians of wall seconds, CPU seconds (user + sys) and peak RSS (GNU time). Writes BENCHMARKS.md
# at the repository root (overwriting it) and prints the same Markdown on stdout.
#
#   bash testdata/lab/benchmarks.sh [ROW...]
#
# ROW is one of
#   20       198.18.16.0/20 (4096 addresses): ofmprobe's full check, nmap -sT and nbtscan
#   16       198.19.0.0/16 (65536 addresses): the same three (nmap only with NMAP16=1, else estimated)
#   slow16   the same /16 in the lab's slow mode (`lab.sh slow on`: every answer 150-900 ms late), ofmprobe's full
#            check only, scored against the same truth; the script switches slow mode on for this row and off for the
#            others, and leaves the mode as it found it
#   tcp16    the /16, TCP only: `ofmprobe scan --steps tcp --ports 135,139,445` next to
#            `nmap -n -sT -Pn -T4 --min-rate 3000 -p 135,139,445`, ports scored, wall time as a ratio (a build
#            without --steps shows "not supported by this build" and runs nmap alone)
#   or a comma-separated list of targets (addresses or CIDR prefixes) inside those two ranges, measured and scored as
#   one range like 20. Default: 20 16 slow16 tcp16.
#
# Environment:
#   BENCH_ONLY=ROW,…  run only these rows (e.g. BENCH_ONLY=slow16,tcp16), instead of the arguments; unless OUT is
#                     set too, the Markdown goes to stdout only and BENCHMARKS.md is left alone
#   OFMPROBE_BIN=FILE an ofmprobe binary to use instead of building ./cmd/ofmprobe (a tree that does not build)
#   RUNS=N            runs per tool (default 3); nmap's and nbtscan's scores are taken from the last run, ofmprobe's
#                     from its worst run (every run is scored)
#   KEEP_DIR=DIR      where an ofmprobe run's output is kept when it got any fact wrong (default
#                     $OFMLAB_DIR/bench-wrong)
#   OFMPROBE_FLAGS=…  extra ofmprobe flags, word-split, e.g. OFMPROBE_FLAGS="--concurrency 8192"
#   NMAP16=1          also run nmap on the full /16 (about two hours a run); by default its wall time is estimated as
#                     16 x the /20 median and marked so
#   SLICE=1|LEN       for testing: 20, 16, slow16 and tcp16 become four /LEN prefixes (SLICE=1: /28), one at the start of each
#                     block kind (open, closed, dropped, mixed), e.g. 198.18.16.0/28 198.18.20.0/28 198.18.24.0/28
#                     198.18.28.0/28
#   TIMEOUT=S         seconds each command may run before timeout kills it (default 14400 for a full /16 row, else 1800)
#   OUT=FILE          the Markdown file (default BENCHMARKS.md at the repository root; none with BENCH_ONLY)
#
# Truth (lab.sh's nftables rules in ofmlab-bulk), by /22 of the /20 and by /18 of the /16, in this order:
#   open     TCP 135 139 445 open;            UDP 137 node status answers as BULKcccddd (third and fourth octet)
#   closed   TCP 135 139 445 closed;          UDP 137 closed (ICMP port unreachable)
#   dropped  TCP 135 139 445 filtered;        UDP 137 silent
#   mixed    TCP 445 open, 139 closed, 135 filtered; UDP 137 answers as BULKcccddd
#
# The lab must be up (bash testdata/lab/lab.sh up). Every target must lie inside 198.18.16.0/20 or 198.19.0.0/16.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=$PATH:/usr/local/go/bin

# The settings given in the environment, shown in BENCHMARKS.md with the command line.
invocation=
for v in BENCH_ONLY RUNS SLICE NMAP16 TIMEOUT OFMPROBE_FLAGS OFMPROBE_BIN KEEP_DIR; do
	[[ -z ${!v:-} ]] || invocation+="$v=\"${!v}\" "
done
invocation+="bash testdata/lab/benchmarks.sh"
[ $# -eq 0 ] || invocation+=" $*"

RUNS=${RUNS:-3}
KEEP_DIR=${KEEP_DIR:-${OFMLAB_DIR:-/run/ofmlab}/bench-wrong}
NS=ofmlab-scan
NMAP16=${NMAP16:-0}
SLICE=${SLICE:-}
if [[ -n ${BENCH_ONLY:-} ]]; then
	OUT=${OUT:-}
else
	OUT=${OUT:-BENCHMARKS.md}
fi
LAB="bash testdata/lab/lab.sh"
R20=198.18.16.0/20
R16=198.19.0.0/16
read -ra oflags <<<"${OFMPROBE_FLAGS:-}"

die() { echo "benchmarks.sh: $*" >&2; exit 2; }
say() { echo "benchmarks.sh: $*" >&2; }

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS=$RUNS is not a positive number"
[[ -z ${TIMEOUT:-} || $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "TIMEOUT=$TIMEOUT is not a number of seconds"
slicelen=
if [[ -n $SLICE && $SLICE != 0 ]]; then
	slicelen=$SLICE
	[[ $SLICE == 1 ]] && slicelen=28
	if ! [[ $slicelen =~ ^[0-9]+$ ]] || ((slicelen < 22 || slicelen > 32)); then
		die "SLICE=$SLICE: use 1 or a prefix length 22-32"
	fi
fi

tmp=$(mktemp -d)
# slow_was: the lab's slow mode when the script started (1 on, 0 off, empty before it was looked at); it is restored
# on exit, however the script ends.
slow_was='' slow_now=
restore_slow() {
	[[ -n $slow_was && $slow_now != "$slow_was" ]] || return 0
	if ((slow_was)); then $LAB slow on >&2 || true; else $LAB slow off >&2 || true; fi
}
trap 'restore_slow; rm -rf "$tmp"' EXIT

# The scorer and target checker. Truth is computed by address, so any address of the two ranges can be scored.
cat >"$tmp/score.py" <<'PY'
import ipaddress, json, re, sys
from collections import Counter

R20 = ipaddress.ip_network("198.18.16.0/20")  # blocks by /22 (1024 addresses)
R16 = ipaddress.ip_network("198.19.0.0/16")   # blocks by /18 (16384 addresses)
KINDS = ("open", "closed", "dropped", "mixed")
PORTS = (135, 139, 445)
EXPECT = {
    "open": {135: "open", 139: "open", 445: "open"},
    "closed": {135: "closed", 139: "closed", 445: "closed"},
    "dropped": {135: "filtered", 139: "filtered", 445: "filtered"},
    "mixed": {135: "filtered", 139: "closed", 445: "open"},
}
# What ofmprobe's netbios.state must be where node status does not answer.
NB_STATE = {"closed": "closed", "dropped": "open|filtered"}


def kind(a):
    ip = ipaddress.ip_address(a)
    if ip in R20:
        return KINDS[(int(ip) - int(R20.network_address)) >> 10]
    if ip in R16:
        return KINDS[(int(ip) - int(R16.network_address)) >> 14]
    return None


def name(a):
    o = a.split(".")
    return "BULK%03d%03d" % (int(o[2]), int(o[3]))


def networks(targets):
    nets = []
    for t in targets:
        try:
            n = ipaddress.ip_network(t, strict=False)
        except ValueError:
            sys.exit("%s: not an IPv4 address or CIDR prefix" % t)
        if n.version != 4 or not (n.subnet_of(R20) or n.subnet_of(R16)):
            sys.exit("%s: not inside %s or %s (the bulk ranges with a known truth): refusing" % (t, R20, R16))
        nets.append(n)
    return nets


def universe(targets):
    seen, out = set(), []
    for n in networks(targets):
        for ip in n:  # every address, network and broadcast addresses included, as nmap and ofmprobe scan them
            s = str(ip)
            if s not in seen:
                seen.add(s)
                out.append(s)
    return out


def top(c, n=6):
    return ", ".join("%s x%d" % (k, v) for k, v in c.most_common(n)) or "none"


def score(tool, path, targets):
    addrs = universe(targets)
    want = set(addrs)
    ports = {}   # address -> {port: state}
    names = {}   # address -> (state, computer_name) for ofmprobe, computer name for nbtscan
    extra = dup = 0

    def fresh(a, seen):
        """Whether a is an address of the range not yet in seen; counts the others."""
        nonlocal extra, dup
        if a not in want:
            extra += 1
            return False
        if a in seen:
            dup += 1
            return False
        return True

    if tool == "ofmprobe":
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if '"host"' not in line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("type") != "host":
                    continue
                h = rec.get("host") or {}
                a = h.get("address")
                if not fresh(a, ports):
                    continue
                ports[a] = {p.get("port"): p.get("state") for p in h.get("ports") or [] if p.get("protocol") == "tcp"}
                nb = h.get("netbios") or {}
                names[a] = (nb.get("state"), nb.get("computer_name"))
    elif tool == "nmap":
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.match(r"Host: (\S+) .*?\tPorts: (.*)", line.rstrip("\n"))
                if not m:
                    continue
                a, rest = m.group(1), m.group(2)
                if not fresh(a, ports):
                    continue
                fields = rest.split("\t")
                st = {}
                for e in fields[0].split(","):
                    p = e.strip().split("/")
                    if len(p) >= 3 and p[0].isdigit() and p[2] == "tcp":
                        st[int(p[0])] = p[1]
                for fld in fields[1:]:  # "Ignored State: closed (997)": the ports not listed are in that state
                    im = re.match(r"Ignored State: (\S+)", fld)
                    if im:
                        for p in PORTS:
                            st.setdefault(p, im.group(1))
                ports[a] = st
    elif tool == "nbtscan":
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.match(r"(\d+\.\d+\.\d+\.\d+)\s+(\S+)", line)
                if not m:
                    continue
                a = m.group(1)
                if not fresh(a, names):
                    continue
                names[a] = m.group(2)
    else:
        sys.exit("unknown tool " + tool)

    res = {"addresses": len(addrs), "extra": extra, "dup": dup}
    if tool in ("ofmprobe", "nmap"):
        right, wrong = 0, Counter()
        for a in addrs:
            k = kind(a)
            got = ports.get(a)
            for p in PORTS:
                s = got.get(p, "none") if got is not None else "missing"
                if s == EXPECT[k][p]:
                    right += 1
                else:
                    wrong["%s %d/tcp %s->%s" % (k, p, EXPECT[k][p], s)] += 1
        res.update(seen=sum(1 for a in addrs if a in ports), ports_right=right, ports_total=3 * len(addrs),
                   ports_wrong=top(wrong))
    if tool in ("ofmprobe", "nbtscan"):
        right, wrong = 0, Counter()
        answer = [a for a in addrs if kind(a) in ("open", "mixed")]
        ans_right = miss = bad_name = unexpected = 0
        for a in addrs:
            k = kind(a)
            if tool == "ofmprobe":
                st, cn = names.get(a, ("missing", None))
                if k in NB_STATE:
                    ok = st == NB_STATE[k] and not cn
                    why = "%s nbstat %s->%s%s" % (k, NB_STATE[k], st, " (name %s)" % cn if cn else "")
                else:
                    ok = cn == name(a)
                    why = "%s nbstat answer->%s%s" % (k, st, " (wrong name)" if cn else "")
                if k in ("open", "mixed"):
                    ans_right += ok
                    miss += cn is None
                    bad_name += cn is not None and not ok
                else:
                    unexpected += cn is not None
            else:
                cn = names.get(a)
                if k in ("open", "mixed"):
                    ok = cn == name(a)
                    ans_right += ok
                    miss += cn is None
                    bad_name += cn is not None and not ok
                    why = "%s answer->%s" % (k, "missing" if cn is None else "wrong name")
                else:
                    ok = cn is None
                    unexpected += cn is not None
                    why = "%s no answer->answered" % k
            if ok:
                right += 1
            else:
                wrong[why] += 1
        res.update(names_right=right, names_total=len(addrs), names_wrong=top(wrong),
                   answers_expected=len(answer), answers_right=ans_right, missed=miss, bad_name=bad_name,
                   unexpected=unexpected, answered=len(names) if tool == "nbtscan" else None)
        if tool == "nbtscan":
            res["seen"] = len(names)
    return res


if __name__ == "__main__":
    if sys.argv[1] == "check":
        networks(sys.argv[2:])
    elif sys.argv[1] == "count":
        print(len(universe(sys.argv[2:])))
    elif sys.argv[1] == "list":
        print("\n".join(universe(sys.argv[2:])))
    else:
        print(json.dumps(score(sys.argv[1], sys.argv[2], sys.argv[3:])))
PY
py() { python3 "$tmp/score.py" "$@"; }

# Sections: one per RANGE argument; sec_targets holds its targets separated by spaces.
args=("$@")
if [[ -n ${BENCH_ONLY:-} ]]; then
	[ ${#args[@]} -eq 0 ] || die "give rows either as arguments or in BENCH_ONLY, not both"
	IFS=', ' read -ra args <<<"$BENCH_ONLY"
fi
[ ${#args[@]} -gt 0 ] || args=(20 16 slow16 tcp16)
sec_id=() sec_label=() sec_targets=()
slices() { # slices A.B FIRST_C STEP: the first /slicelen of each of the four blocks (A.B.FIRST_C.0, + STEP, ...)
	local ab=$1 c0=$2 step=$3 i out=()
	for ((i = 0; i < 4; i++)); do out+=("$ab.$((c0 + i * step)).0/$slicelen"); done
	echo "${out[*]}"
}
# section ID LABEL RANGE A.B FIRST_C STEP adds the row ID on RANGE, or its four slices with SLICE set.
section() {
	sec_id+=("$1")
	if [[ -n $slicelen ]]; then
		sec_targets+=("$(slices "$4" "$5" "$6")")
		sec_label+=("$2 slices (SLICE=$SLICE)")
	else
		sec_targets+=("$3")
		sec_label+=("$2")
	fi
}
for a in "${args[@]}"; do
	case "$a" in
	20 | /20) section 20 /20 "$R20" 198.18 16 4 ;;
	16 | /16) section 16 /16 "$R16" 198.19 0 64 ;;
	slow16) section slow16 "slow /16" "$R16" 198.19 0 64 ;;
	tcp16) section tcp16 "/16 TCP only" "$R16" 198.19 0 64 ;;
	*)
		ts=${a//,/ }
		for t in $ts; do
			case "$t" in
			198.18.* | 198.19.*) ;;
			*) die "$t is not a lab address (198.18.0.0/15): refusing" ;;
			esac
		done
		sec_id+=(custom)
		sec_targets+=("$ts")
		sec_label+=("$ts")
		;;
	esac
done
for ts in "${sec_targets[@]}"; do
	# shellcheck disable=SC2086 # targets are split on purpose
	py check $ts || die "refusing: every target must lie inside $R20 or $R16"
done

[ -x /usr/bin/time ] || die "/usr/bin/time is missing (apt-get install time)"
for c in go nmap nbtscan python3; do command -v "$c" >/dev/null || die "$c is missing"; done
$LAB status >/dev/null 2>&1 || die "the lab is not up (bash testdata/lab/lab.sh up)"
slow_was=0
$LAB slow status >/dev/null 2>&1 && slow_was=1
slow_now=$slow_was
# set_slow 0|1 switches the lab's slow mode for the next row.
set_slow() {
	[[ $slow_now == "$1" ]] && return 0
	slow_now=unknown # until lab.sh has switched it
	if (($1)); then $LAB slow on >&2; else $LAB slow off >&2; fi
	slow_now=$1
}

if [[ -n ${OFMPROBE_BIN:-} ]]; then
	[[ -x $OFMPROBE_BIN ]] || die "OFMPROBE_BIN=$OFMPROBE_BIN is not an executable"
	bin=$(realpath "$OFMPROBE_BIN")
else
	bin=$tmp/ofmprobe
	go build -o "$bin" ./cmd/ofmprobe
fi
# The TCP-only row needs --steps, which not every build has.
has_steps=0
"$bin" scan --help 2>&1 | grep -q -- --steps && has_steps=1

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# measure STDOUT_FILE CMD... runs CMD RUNS times in the scanner namespace under GNU time and timeout, its stdout to
# STDOUT_FILE (overwritten each run, so the last run's stays) and its stderr to $tmp/stderr. Sets m_wall, m_cpu, m_rss
# (medians), m_walls (every run's wall seconds) and m_rcs (the exit statuses), space-separated.
measure() {
	local so=$1 i rc wall user sys rss walls=() cpus=() rsss=() rcs=()
	shift
	for ((i = 1; i <= RUNS; i++)); do
		rc=0
		ip netns exec "$NS" /usr/bin/time -f '%e %U %S %M' -o "$tmp/time" timeout "$to" "$@" >"$so" 2>"$tmp/stderr" || rc=$?
		wall='' user='' sys='' rss=
		read -r wall user sys rss < <(tail -n 1 "$tmp/time") || true
		[[ $rss =~ ^[0-9]+$ ]] || { cat "$tmp/stderr" >&2; die "no GNU time line for: $* (exit $rc)"; }
		walls+=("$wall")
		cpus+=("$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.2f", u + s}')")
		rsss+=("$(awk -v r="$rss" 'BEGIN {printf "%.1f", r / 1024}')")
		rcs+=("$rc")
		say "  run $i/$RUNS: wall ${wall} s, CPU ${cpus[-1]} s, peak RSS ${rsss[-1]} MiB, exit $rc"
		[[ -z ${after_run:-} ]] || "$after_run" "$i"
		if [[ $1 == "$bin" && $rc == 2 ]]; then
			cat "$tmp/stderr" >&2
			die "ofmprobe exited 2 (usage error; check OFMPROBE_FLAGS)"
		fi
	done
	m_wall=$(median "${walls[@]}") m_cpu=$(median "${cpus[@]}") m_rss=$(median "${rsss[@]}") m_rcs="${rcs[*]}"
	m_walls="${walls[*]}"
}

# jget JSON KEY prints one field of the scorer's answer.
jget() { python3 -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print("" if v is None else v)' "$1" "$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b <= 0) print "n/a"; else if (a / b < 10) printf "%.2f", a / b; else printf "%.1f", a / b}'; }
# timed_out RCS prints a note when any run was killed by timeout (124).
timed_out() { if [[ " $1 " == *" 124 "* ]]; then echo " (a run timed out after $2 s)"; fi; }

# Results, per section i: r_<tool>_<field>[i].
declare -A R
q() { printf '%s' "$*"; } # the command as shown in BENCHMARKS.md

# run_ofmprobe I ARGS... measures ofmprobe with ARGS (before the targets) on section I, into R[I,o_*].
run_ofmprobe() {
	local i=$1 ofile=$tmp/ofmprobe-$1.ndjson
	shift
	local ocmd=(scan --allow-large --format ndjson --output "$ofile" "$@" "${oflags[@]}" "${T[@]}")
	R[$i,ocmd]=$(q ofmprobe scan --allow-large --format ndjson --output FILE "$@" "${oflags[@]}" "${T[@]}")
	say "ofmprobe: ${R[$i,ocmd]}"
	score_sec=$i score_file=$ofile score_worst='' score_worst_right='' score_rights=()
	after_run=score_ofmprobe_run measure /dev/null "$bin" "${ocmd[@]}"
	R[$i,o_wall]=$m_wall R[$i,o_cpu]=$m_cpu R[$i,o_rss]=$m_rss R[$i,o_rcs]=$m_rcs R[$i,o_walls]=$m_walls
	R[$i,o_score]=$score_worst R[$i,o_rights]="${score_rights[*]}"
	rm -f "$ofile"
}

# score_ofmprobe_run RUN scores one run's output (score_file) against the truth: the section keeps the worst run's
# score (fewest facts right), and a run with any fact wrong keeps its output in KEEP_DIR for its evidence.
score_ofmprobe_run() {
	local run=$1 sc right keep
	sc=$(py ofmprobe "$score_file" "${T[@]}")
	right=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d.get("ports_right", 0) + d.get("names_right", 0))' "$sc")
	score_rights+=("$right")
	if [[ -z $score_worst_right ]] || ((right < score_worst_right)); then
		score_worst=$sc score_worst_right=$right
	fi
	if [[ $(jget "$sc" ports_wrong) != none || $(jget "$sc" names_wrong) != none ]]; then
		mkdir -p "$KEEP_DIR"
		keep=$KEEP_DIR/${sec_id[score_sec]}-run$run-$(date -u +%Y%m%dT%H%M%S).ndjson
		cp "$score_file" "$keep"
		say "  run $run: facts wrong (ports: $(jget "$sc" ports_wrong); names: $(jget "$sc" names_wrong)); output kept in $keep"
	fi
}

# run_nmap I ARGS... measures nmap ARGS -oG FILE TARGETS on section I, into R[I,n_*].
run_nmap() {
	local i=$1 nfile=$tmp/nmap-$1.gnmap
	shift
	R[$i,n_run]=1
	R[$i,ncmd]=$(q "$@" -oG FILE "${T[@]}")
	say "nmap: ${R[$i,ncmd]}"
	measure /dev/null "$@" -oG "$nfile" "${T[@]}"
	R[$i,n_wall]=$m_wall R[$i,n_cpu]=$m_cpu R[$i,n_rss]=$m_rss R[$i,n_rcs]=$m_rcs R[$i,n_walls]=$m_walls
	R[$i,n_score]=$(py nmap "$nfile" "${T[@]}")
}

for i in "${!sec_id[@]}"; do
	read -ra T <<<"${sec_targets[i]}"
	id=${sec_id[i]}
	full16=0
	[[ $id == 16 || $id == slow16 || $id == tcp16 ]] && [[ -z $slicelen ]] && full16=1
	to=${TIMEOUT:-1800}
	((full16)) && to=${TIMEOUT:-14400}
	R[$i,n]=$(py count "${T[@]}")
	R[$i,to]=$to
	R[$i,n_run]=0
	say "${sec_label[i]} (${T[*]}): ${R[$i,n]} addresses, $RUNS runs per tool, timeout $to s"
	if [[ $id == slow16 ]]; then
		set_slow 1
		R[$i,slow]=$(cat "${OFMLAB_DIR:-/run/ofmlab}/slow16" 2>/dev/null || echo "? ?")
	else
		set_slow 0
	fi

	case $id in
	slow16)
		# The full check only: nmap would take hours, and nbtscan's single query is no test of waiting.
		run_ofmprobe "$i"
		;;
	tcp16)
		if ((has_steps)); then
			run_ofmprobe "$i" --steps tcp --ports 135,139,445
		else
			R[$i,ocmd]="ofmprobe scan --allow-large --format ndjson --output FILE --steps tcp --ports 135,139,445 ${T[*]} (not supported by this build: no --steps)"
			say "ofmprobe: this build has no --steps; the TCP-only ofmprobe row is not run"
		fi
		run_nmap "$i" nmap -n -sT -Pn -T4 --min-rate 3000 -p "135,139,445"
		;;
	*)
		# 1. ofmprobe
		run_ofmprobe "$i"

		# 2. nmap
		ncmd=(nmap -n -sT -Pn -T4 -p "135,139,445")
		if ((full16)) && [[ $NMAP16 != 1 ]]; then
			R[$i,ncmd]=$(q "${ncmd[@]}" -oG FILE "${T[@]}")
			say "nmap: not run on the /16 (NMAP16=1 runs it; about two hours a run)"
		else
			run_nmap "$i" "${ncmd[@]}"
		fi

		# 3. nbtscan: one target as is; several (slices, lists) as an address file, since nbtscan takes one range.
		bfile=$tmp/nbtscan-$i.txt
		if [ ${#T[@]} -eq 1 ]; then
			bcmd=(nbtscan -q "${T[0]}")
			R[$i,bcmd]=$(q "${bcmd[@]}")" > FILE"
		else
			py list "${T[@]}" >"$tmp/nbtscan-$i.targets"
			bcmd=(nbtscan -q -f "$tmp/nbtscan-$i.targets")
			R[$i,bcmd]="nbtscan -q -f ADDRESSES > FILE (ADDRESSES: every address of ${T[*]}, one a line)"
		fi
		say "nbtscan: ${R[$i,bcmd]}"
		measure "$bfile" "${bcmd[@]}"
		R[$i,b_wall]=$m_wall R[$i,b_cpu]=$m_cpu R[$i,b_rss]=$m_rss R[$i,b_rcs]=$m_rcs R[$i,b_walls]=$m_walls
		R[$i,b_score]=$(py nbtscan "$bfile" "${T[@]}")
		;;
	esac

	for tool in o n b; do
		s=${R[$i,${tool}_score]:-}
		[[ -n $s ]] || continue
		case $tool in o) tn=ofmprobe ;; n) tn=nmap ;; b) tn=nbtscan ;; esac
		line="$tn on ${sec_label[i]}:"
		[[ $tool != b ]] && line+=" ports right $(jget "$s" ports_right) of $(jget "$s" ports_total);"
		[[ $tool == o && $id != tcp16 || $tool == b ]] && line+=" names right $(jget "$s" names_right) of $(jget "$s" names_total);"
		if [[ $tool == b ]]; then
			line+=" $(jget "$s" seen) of $(jget "$s" addresses) addresses answered"
		else
			line+=" addresses seen $(jget "$s" seen) of $(jget "$s" addresses)"
		fi
		echo "$line"
	done
done
set_slow "$slow_was"

# The nmap /16 estimate needs a measured full /20 in this run.
n20=
for i in "${!sec_id[@]}"; do
	[[ ${sec_id[i]} == 20 && -z $slicelen && ${R[$i,n_run]} == 1 ]] && n20=${R[$i,n_wall]}
done

# cell_ports / cell_names SCORE-JSON print a table cell.
cell_ports() { echo "$(jget "$1" ports_right) of $(jget "$1" ports_total)"; }
cell_names() { echo "$(jget "$1" names_right) of $(jget "$1" names_total)"; }

md=$tmp/md
{
	echo "# Benchmarks: ofmprobe, nmap and nbtscan on the lab's bulk ranges"
	echo
	echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`${invocation}\`: runs per tool: $RUNS, medians."
	echo "Every command ran in the lab's scanner namespace as \`ip netns exec $NS /usr/bin/time -f '%e %U %S %M' timeout S CMD\`;"
	echo "CPU s is user + sys, peak RSS the largest resident set of the command. Scores are from the last run."
	echo
	echo "## Machine"
	echo
	echo "| | |"
	echo "|---|---|"
	echo "| CPU | $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), nproc $(nproc) |"
	echo "| memory | $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) |"
	echo "| kernel | $(uname -r) |"
	echo "| Go | $(go version | sed 's/^go version //') |"
	commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
	[ -z "$(git status --porcelain 2>/dev/null)" ] || commit+=" with uncommitted changes"
	echo "| ofmprobe | commit $commit |"
	echo "| nmap | $(nmap --version | head -n 1) |"
	echo "| nbtscan | $( (nbtscan 2>&1 || true) | grep -m 1 -o 'version [0-9.]*[0-9]' || echo unknown) |"
	echo
	echo "## Commands"
	echo
	if [[ -n ${OFMPROBE_BIN:-} ]]; then
		echo "ofmprobe is the prebuilt \`OFMPROBE_BIN=${OFMPROBE_BIN}\`. FILE is a scratch file; each run overwrites it."
	else
		echo "ofmprobe is built once with \`go build -o \$tmp/ofmprobe ./cmd/ofmprobe\`. FILE is a scratch file; each run overwrites it."
	fi
	echo
	for i in "${!sec_id[@]}"; do
		echo "${sec_label[i]} (${R[$i,n]} addresses), timeout ${R[$i,to]} s:"
		echo
		echo '```'
		[[ ${sec_id[i]} != slow16 ]] || echo "bash testdata/lab/lab.sh slow on   # ${R[$i,slow]% *}-${R[$i,slow]#* } ms; off again afterwards"
		echo "${R[$i,ocmd]}"
		[[ -z ${R[$i,ncmd]:-} ]] || echo "${R[$i,ncmd]}"
		[[ -z ${R[$i,bcmd]:-} ]] || echo "${R[$i,bcmd]}"
		echo '```'
		echo
	done
	for i in "${!sec_id[@]}"; do
		h=${sec_label[i]}
		[[ $h == "${sec_targets[i]}" ]] || h+=": ${sec_targets[i]}"
		echo "## $h (${R[$i,n]} addresses)"
		echo
		echo "| tool | wall s | CPU s | peak RSS MiB | ports right | names right |"
		echo "|---|---|---|---|---|---|"
		case ${sec_id[i]} in
		slow16)
			s=${R[$i,o_score]}
			echo "| ofmprobe full check, slow mode (${R[$i,slow]% *}-${R[$i,slow]#* } ms) | ${R[$i,o_wall]}$(timed_out "${R[$i,o_rcs]}" "${R[$i,to]}") | ${R[$i,o_cpu]} | ${R[$i,o_rss]} | $(cell_ports "$s") | $(cell_names "$s") |"
			echo
			echo "- ofmprobe: addresses seen $(jget "$s" seen) of $(jget "$s" addresses); wrong ports: $(jget "$s" ports_wrong); wrong names: $(jget "$s" names_wrong); wall s of each run ${R[$i,o_walls]}; ports and names right in each run ${R[$i,o_rights]} (the counts above are the worst run's); exit statuses ${R[$i,o_rcs]}"
			echo "- nmap and nbtscan are not run in slow mode."
			echo
			continue
			;;
		tcp16)
			if [[ -n ${R[$i,o_score]:-} ]]; then
				s=${R[$i,o_score]}
				echo "| ofmprobe --steps tcp --ports 135,139,445 | ${R[$i,o_wall]}$(timed_out "${R[$i,o_rcs]}" "${R[$i,to]}") | ${R[$i,o_cpu]} | ${R[$i,o_rss]} | $(cell_ports "$s") | not probed |"
			else
				echo "| ofmprobe --steps tcp --ports 135,139,445 | not supported by this build | | | | not probed |"
			fi
			s=${R[$i,n_score]}
			echo "| nmap -sT -T4 --min-rate 3000 135,139,445 | ${R[$i,n_wall]}$(timed_out "${R[$i,n_rcs]}" "${R[$i,to]}") | ${R[$i,n_cpu]} | ${R[$i,n_rss]} | $(cell_ports "$s") | not probed |"
			echo
			if [[ -n ${R[$i,o_score]:-} ]]; then
				echo "- nmap wall / ofmprobe wall: $(ratio "${R[$i,n_wall]}" "${R[$i,o_wall]}")x"
				s=${R[$i,o_score]}
				echo "- ofmprobe: addresses seen $(jget "$s" seen) of $(jget "$s" addresses); wrong ports: $(jget "$s" ports_wrong); wall s of each run ${R[$i,o_walls]}; ports and names right in each run ${R[$i,o_rights]} (the counts above are the worst run's); exit statuses ${R[$i,o_rcs]}"
			else
				echo "- nmap wall / ofmprobe wall: not measured (this ofmprobe build has no --steps)"
			fi
			s=${R[$i,n_score]}
			echo "- nmap: addresses seen $(jget "$s" seen) of $(jget "$s" addresses); wrong ports: $(jget "$s" ports_wrong); wall s of each run ${R[$i,n_walls]}; exit statuses ${R[$i,n_rcs]}"
			echo
			continue
			;;
		esac
		s=${R[$i,o_score]}
		echo "| ofmprobe full check | ${R[$i,o_wall]}$(timed_out "${R[$i,o_rcs]}" "${R[$i,to]}") | ${R[$i,o_cpu]} | ${R[$i,o_rss]} | $(cell_ports "$s") | $(cell_names "$s") |"
		if [[ ${R[$i,n_run]} == 1 ]]; then
			s=${R[$i,n_score]}
			echo "| nmap -sT 135,139,445 | ${R[$i,n_wall]}$(timed_out "${R[$i,n_rcs]}" "${R[$i,to]}") | ${R[$i,n_cpu]} | ${R[$i,n_rss]} | $(cell_ports "$s") | not probed |"
			nw=${R[$i,n_wall]} nest=
		elif [[ -n $n20 ]]; then
			nw=$(awk -v w="$n20" 'BEGIN {printf "%.1f", 16 * w}') nest=" (estimated)"
			echo "| nmap -sT 135,139,445 | $nw estimated (16 x /20), not run | not run | not run | not run | not probed |"
		else
			nw='' nest=
			echo "| nmap -sT 135,139,445 | not run (NMAP16=1 runs it; no /20 measured to estimate from) | not run | not run | not run | not probed |"
		fi
		s=${R[$i,b_score]}
		echo "| nbtscan -q | ${R[$i,b_wall]}$(timed_out "${R[$i,b_rcs]}" "${R[$i,to]}") | ${R[$i,b_cpu]} | ${R[$i,b_rss]} | not probed | $(cell_names "$s") |"
		echo
		[[ -z $nw ]] || echo "- nmap wall / ofmprobe wall: $(ratio "$nw" "${R[$i,o_wall]}")x$nest"
		s=${R[$i,o_score]}
		echo "- ofmprobe: addresses seen $(jget "$s" seen) of $(jget "$s" addresses); wrong ports: $(jget "$s" ports_wrong); wrong names: $(jget "$s" names_wrong); wall s of each run ${R[$i,o_walls]}; ports and names right in each run ${R[$i,o_rights]} (the counts above are the worst run's); exit statuses ${R[$i,o_rcs]}"
		if [[ ${R[$i,n_run]} == 1 ]]; then
			s=${R[$i,n_score]}
			echo "- nmap: addresses seen $(jget "$s" seen) of $(jget "$s" addresses); wrong ports: $(jget "$s" ports_wrong); wall s of each run ${R[$i,n_walls]}; exit statuses ${R[$i,n_rcs]}"
		fi
		s=${R[$i,b_score]}
		echo "- nbtscan: $(jget "$s" answers_right) of $(jget "$s" answers_expected) expected names right, $(jget "$s" missed) missed, $(jget "$s" bad_name) wrong names, $(jget "$s" unexpected) answers where none was expected; wall s of each run ${R[$i,b_walls]}; exit statuses ${R[$i,b_rcs]}"
		echo
	done
	o20='' o16='' os16='' ot16='' nt16=
	for i in "${!sec_id[@]}"; do
		case ${sec_id[i]} in
		20) o20=${R[$i,o_wall]} ;;
		16) o16=${R[$i,o_wall]} ;;
		slow16) os16=${R[$i,o_wall]} ;;
		tcp16) ot16=${R[$i,o_wall]:-} nt16=${R[$i,n_wall]} ;;
		esac
	done
	if [[ -n $o20 && -n $o16 || -n $o16 && -n $os16 || -n $ot16 ]]; then
		echo "## Ratios"
		echo
		[[ -z $o20 || -z $o16 ]] || echo "- /16 ofmprobe wall / /20 ofmprobe wall: $(ratio "$o16" "$o20")x (16x the addresses)"
		[[ -z $o16 || -z $os16 ]] || echo "- slow /16 ofmprobe wall / /16 ofmprobe wall: $(ratio "$os16" "$o16")x (same addresses and truth, every answer late)"
		[[ -z $ot16 ]] || echo "- /16 TCP only: nmap --min-rate 3000 wall / ofmprobe --steps tcp wall: $(ratio "$nt16" "$ot16")x"
		echo
	fi
	echo "## Scoring"
	echo
	echo "Truth is fixed by lab.sh's nftables rules in \`ofmlab-bulk\`, by /22 of $R20 and /18 of $R16, in this order:"
	echo "open (TCP 135, 139, 445 open; node status answers), closed (all closed; UDP 137 ICMP unreachable), dropped (all"
	echo "filtered; UDP 137 silent), mixed (445 open, 139 closed, 135 filtered; node status answers). Ports right: TCP 135,"
	echo "139 and 445 of every address (3 per address; an address missing from the output is wrong on all three). Names"
	echo "right, one per address: where node status answers, the name must be \`BULKcccddd\` (third and fourth octet);"
	echo "elsewhere ofmprobe must report NetBIOS \`closed\` (closed block) or \`open|filtered\` (dropped block), and nbtscan,"
	echo "which prints nothing for those, must stay silent. ofmprobe exits 1 when a host fails its OFM grade, as most of"
	echo "these hosts do; that is not an error. The slow /16 has the same truth: slow mode (\`lab.sh slow on\`) only delays"
	echo "every packet the bulk namespace sends from the /16 (SYN-ACK, RST, ICMP unreachable, node status answer) by a"
	echo "uniform random 150-900 ms (an NFQUEUE delay line in labd); nothing is lost. The TCP-only rows score ports only."
	echo
	echo "## Reproduce"
	echo
	echo '```'
	echo "bash testdata/lab/lab.sh up"
	echo "bash testdata/lab/benchmarks.sh            # RUNS=3; NMAP16=1 also runs nmap on the /16 (about two hours a run)"
	echo "BENCH_ONLY=slow16,tcp16 bash testdata/lab/benchmarks.sh   # just these rows, Markdown on stdout only"
	echo '```'
	# The analysis is written by hand, from the numbers and profiles, and kept beside the script.
	if [[ -f testdata/lab/benchmarks-analysis.md ]]; then
		echo
		cat testdata/lab/benchmarks-analysis.md
	fi
} >"$md"

echo
cat "$md"
if [[ -n $OUT ]]; then
	cp "$md" "$OUT"
	say "wrote $OUT"
else
	say "BENCH_ONLY without OUT: no file written"
fi
