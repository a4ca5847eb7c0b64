#!/usr/bin/env bash
# lab.sh builds the ofmprobe test lab: network namespaces on one private
# bridge, real Samba instances and small fake services (labd), all on
# 198.18.0.0/15 with no route out of the lab. See README.md next to this file.
#
# usage: lab.sh install|up|down|status|slow on|off|status|exec CMD...   (as root)
#
# Environment:
#   OFMLAB_DIR       state directory (default /run/ofmlab)
#   OFMLAB_PASSWORD  lab-only password of the Samba user ofmlab (default Lab-Only-0fm!pw)
#   OFMLAB_WAIT      seconds `up` waits for every daemon to listen (default 60)
#   OFMLAB_LOSS      percentage of inbound UDP 137 datagrams host lossy drops at random (default 20)
#   OFMLAB_LOSS2     percentage of all packets host lossy2 drops at random, in and out (default 30)
#   OFMLAB_SLOW16    1: `up` switches the site /16 (198.19.0.0/16) to slow mode (`slow on`); 0: `up` switches it off;
#                    unset: `up` leaves the mode as it is (a freshly built lab is not slow)
#   OFMLAB_SLOW_MIN_MS, OFMLAB_SLOW_MAX_MS
#                    slow mode's delay range in milliseconds, uniform (default 150 and 900)
set -Eeuo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
OFMLAB_DIR=${OFMLAB_DIR:-/run/ofmlab}
OFMLAB_PASSWORD=${OFMLAB_PASSWORD:-Lab-Only-0fm!pw}
OFMLAB_WAIT=${OFMLAB_WAIT:-60}
OFMLAB_LOSS=${OFMLAB_LOSS:-20}
OFMLAB_LOSS2=${OFMLAB_LOSS2:-30}
OFMLAB_SLOW16=${OFMLAB_SLOW16:-}
OFMLAB_SLOW_MIN_MS=${OFMLAB_SLOW_MIN_MS:-150}
OFMLAB_SLOW_MAX_MS=${OFMLAB_SLOW_MAX_MS:-900}

NS_PREFIX=ofmlab-
SWITCH=${NS_PREFIX}sw
SCANNER=${NS_PREFIX}scan
MARKER=.ofmlab-state # proves a directory is ours before `down` removes it
BULK_RANGE=198.18.16.0/20
# SITE_RANGE is a whole /16, local in the bulk namespace like BULK_RANGE, with the same four kinds of block in the same
# proportions (by /18 instead of /22), so a /16 sweep costs what sixteen /20 sweeps would.
SITE_RANGE=198.19.0.0/16
LAB_USER=ofmlab
# prometheus: `ofmprobe serve`'s lab test runs the real server, and promtool checks docs/prometheus/.
APT_PACKAGES=(samba smbclient nmap nbtscan nftables iptables iproute2 procps time chromium prometheus)
# The scanner namespace's /etc/hosts: `ip netns exec` bind-mounts every file of
# /etc/netns/NS over /etc, so the directory holds only the hosts file, whose
# first line marks it as ours.
NETNS_ETC=/etc/netns/${SCANNER}
NETNS_MARKER='# ofmprobe lab: /etc/hosts of the scanner namespace; written by lab.sh up, removed by lab.sh down'
POLICY_CREATED=0 # 1 while a policy-rc.d written by this script exists

# Every namespace except the switch, in start order, with its address (on the bridge, except for rtr2 and routed).
HOSTS=(scan ofm90 ofm91 drop445 noshare authshare empty tarpit garbage lossy smb1only noguest lossy2 rtr1 rtr2 routed bulk)
declare -A ADDR=(
	[scan]=198.18.0.2 [ofm90]=198.18.0.10 [ofm91]=198.18.0.11 [drop445]=198.18.0.12
	[noshare]=198.18.0.13 [authshare]=198.18.0.14 [empty]=198.18.0.15 [tarpit]=198.18.0.16
	[garbage]=198.18.0.18 [lossy]=198.18.0.19 [smb1only]=198.18.0.20 [noguest]=198.18.0.21
	[lossy2]=198.18.0.22 [rtr1]=198.18.0.30 [rtr2]=198.18.1.2 [routed]=198.18.2.10
	[bulk]=198.18.0.250
)
# The routed segment: scan -> rtr1 (198.18.0.30 on the bridge; 198.18.1.1/30 on eth1) -> rtr2 (198.18.1.2/30 on
# eth0; 198.18.2.1/24 on eth1, with the firewall) -> routed (198.18.2.10/24). rtr2 and routed are not on the bridge.
ROUTED_NET=198.18.2.0/24
# The walled host: a second address of routed, to which rtr2's firewall rejects everything.
WALLED=198.18.2.11
LINK_NET=198.18.1.0/30
OFF_BRIDGE=(rtr2 routed)
# NetBIOS names of the Samba hosts (hosts absent here run no Samba).
declare -A NBNAME=([ofm90]=OFM90 [ofm91]=OFM91 [drop445]=DROP445 [noshare]=NOSHARE [authshare]=AUTHSHARE
	[lossy]=LOSSY [smb1only]=SMB1ONLY [noguest]=NOGUEST [lossy2]=LOSSY2 [routed]=ROUTED)
# Hosts that run nmbd, so must answer a NetBIOS node status query.
NMBD_HOSTS=(ofm90 drop445 noshare authshare lossy smb1only lossy2 routed)
# Hosts whose nmbd answers node status with another name than their smbd's netbios name (a renamed server whose
# NetBIOS name service was not restarted, a WINS or LMHOSTS entry left behind): the SMB server's NTLM challenge
# still gives NBNAME.
declare -A NMBD_NBNAME=([noshare]=NOSHAREOLD)
# What must listen in each namespace before the lab counts as up.
declare -A WANT_TCP=(
	[ofm90]="53 135 139 445" [ofm91]="445" [drop445]="139 445" [noshare]="139 445"
	[authshare]="139 445" [tarpit]="53 135 139 445" [garbage]="139 445" [lossy]="139 445"
	[smb1only]="139 445" [noguest]="445" [lossy2]="139 445" [routed]="139 445" [bulk]="135 139 445"
)
declare -A WANT_UDP=([ofm90]="137 138" [drop445]="137 138" [noshare]="137 138" [authshare]="137 138"
	[garbage]="137" [lossy]="137 138" [smb1only]="137 138" [lossy2]="137 138" [routed]="137 138" [bulk]="137")
# Namespaces that carry an nftables table named "inet ofmlab".
NFT_HOSTS=(ofm91 drop445 lossy lossy2 rtr2 bulk)
# The address and name the bulk node status responder must answer with before the lab counts as up.
BULK_PROBE=198.18.16.1
BULK_PROBE_NAME=BULK016001
SITE_PROBE=198.19.0.1
SITE_PROBE_NAME=BULK000001
# Slow mode: every TCP and UDP packet the bulk namespace sends from an address of SITE_RANGE (SYN-ACKs, RSTs, node
# status answers, FINs) goes through NFQUEUE SLOW_QUEUE to `labd -mode nfqdelay`, which holds it for a random
# OFMLAB_SLOW_MIN_MS..OFMLAB_SLOW_MAX_MS before letting it go. This kernel's nftables has no `queue` expression (and
# no netem), but the xtables NFQUEUE target works through iptables-nft. The state file holds "MIN MAX" while it is on.
SLOW_QUEUE=16
# ICMP is not delayed: the kernel sends ICMP errors from a control socket with a fixed send buffer (about 128 KiB),
# charged while a packet waits in the delay line, so a delayed /16 sweep capped the ICMP errors at about 2,000 a second
# and the kernel dropped the rest (IcmpOutErrors): a loss of the lab's making.
SLOW_RULE=(OUTPUT -s "$SITE_RANGE" ! -p icmp -j NFQUEUE --queue-num "$SLOW_QUEUE")
SLOW_STATE=slow16

say() { printf 'lab: %s\n' "$*"; }
warn() { printf 'lab: %s\n' "$*" >&2; }
die() {
	printf 'lab: error: %s\n' "$*" >&2
	exit 1
}
trap 'warn "failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR

ns() { printf '%s%s' "$NS_PREFIX" "$1"; }
hostdir() { printf '%s/hosts/%s' "$OFMLAB_DIR" "$1"; }
in_ns() {
	local name=$1
	shift
	ip netns exec "$(ns "$name")" "$@"
}

require_root() { [[ $(id -u) -eq 0 ]] || die "run as root"; }

# check_state_dir refuses a state directory that is not ours, since `down`
# removes it recursively.
check_state_dir() {
	[[ $OFMLAB_DIR == /* ]] || die "OFMLAB_DIR must be an absolute path: $OFMLAB_DIR"
	# The path goes into smb.conf files unquoted.
	[[ $OFMLAB_DIR =~ ^[A-Za-z0-9._/-]+$ ]] || die "OFMLAB_DIR may hold only letters, digits and . _ / -: $OFMLAB_DIR"
	case "${OFMLAB_DIR%/}" in
	"" | /run | /tmp | /var | /var/tmp | /dev/shm | /home | /root | /usr | /etc | /opt | /srv | /mnt | /media) die "refusing OFMLAB_DIR=$OFMLAB_DIR" ;;
	esac
	if [[ -d $OFMLAB_DIR && ! -e $OFMLAB_DIR/$MARKER ]] && [[ -n $(ls -A "$OFMLAB_DIR") ]]; then
		die "$OFMLAB_DIR exists, is not empty and is not a lab state dir (no $MARKER); refusing to use it"
	fi
}

check_env() {
	if ! [[ $OFMLAB_LOSS =~ ^[0-9]{1,3}$ ]] || ((10#$OFMLAB_LOSS > 100)); then
		die "OFMLAB_LOSS must be a whole percentage 0-100: $OFMLAB_LOSS"
	fi
	OFMLAB_LOSS=$((10#$OFMLAB_LOSS))
	if ! [[ $OFMLAB_LOSS2 =~ ^[0-9]{1,3}$ ]] || ((10#$OFMLAB_LOSS2 > 99)); then
		die "OFMLAB_LOSS2 must be a whole percentage 0-99: $OFMLAB_LOSS2"
	fi
	OFMLAB_LOSS2=$((10#$OFMLAB_LOSS2))
	[[ $OFMLAB_WAIT =~ ^[0-9]+$ ]] || die "OFMLAB_WAIT must be a number of seconds: $OFMLAB_WAIT"
	[[ -z $OFMLAB_SLOW16 || $OFMLAB_SLOW16 == 0 || $OFMLAB_SLOW16 == 1 ]] || die "OFMLAB_SLOW16 must be 0, 1 or unset: $OFMLAB_SLOW16"
	[[ $OFMLAB_SLOW_MIN_MS =~ ^[0-9]{1,5}$ && $OFMLAB_SLOW_MAX_MS =~ ^[0-9]{1,5}$ ]] &&
		((10#$OFMLAB_SLOW_MIN_MS <= 10#$OFMLAB_SLOW_MAX_MS)) ||
		die "OFMLAB_SLOW_MIN_MS and OFMLAB_SLOW_MAX_MS must be milliseconds (0-99999), MIN <= MAX: $OFMLAB_SLOW_MIN_MS $OFMLAB_SLOW_MAX_MS"
	OFMLAB_SLOW_MIN_MS=$((10#$OFMLAB_SLOW_MIN_MS)) OFMLAB_SLOW_MAX_MS=$((10#$OFMLAB_SLOW_MAX_MS))
}

# lab_lock serialises concurrent runs of this script.
lab_lock() {
	exec 9<"${BASH_SOURCE[0]}"
	flock -w 120 9 || die "another lab.sh is still running"
}

lab_namespaces() { ip netns list 2>/dev/null | awk -v p="$NS_PREFIX" 'index($1, p) == 1 { print $1 }'; }

# ---------------------------------------------------------------- install

dcerpcd_path() {
	local p
	for p in /usr/libexec/samba/samba-dcerpcd /usr/lib/samba/samba-dcerpcd "$(command -v samba-dcerpcd || true)"; do
		[[ -n $p && -x $p ]] && {
			printf '%s' "$p"
			return 0
		}
	done
	return 1
}

missing_tools() {
	local c
	for c in smbd nmbd smbclient nmblookup smbpasswd testparm nmap nbtscan nft iptables ip ss sysctl ps flock setsid timeout useradd; do
		command -v "$c" >/dev/null 2>&1 || printf '%s ' "$c"
	done
	# `command -v time` finds the shell keyword; the tests and bench.sh need GNU time.
	[[ -x /usr/bin/time ]] || printf 'time '
	# The HTML report's tests render it in headless Chromium.
	command -v chromium >/dev/null 2>&1 || printf 'chromium '
	command -v prometheus >/dev/null 2>&1 || printf 'prometheus '
	command -v promtool >/dev/null 2>&1 || printf 'promtool '
	dcerpcd_path >/dev/null || printf 'samba-dcerpcd '
}

# root_ns_samba prints the PIDs of Samba daemons running in the root network
# namespace (the machine's own), which the lab never starts.
root_ns_samba() {
	local root_net pid comm
	# This script runs in the root namespace; /proc/1 may be unreadable in a sandbox.
	root_net=$(readlink /proc/1/ns/net 2>/dev/null || readlink /proc/self/ns/net)
	for pid in /proc/[0-9]*; do
		pid=${pid#/proc/}
		comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
		case "$comm" in
		smbd | nmbd | samba | samba-dcerpcd | rpcd_* | winbindd | samba-bgqd) ;;
		*) continue ;;
		esac
		[[ $(readlink "/proc/$pid/ns/net" 2>/dev/null) == "$root_net" ]] && printf '%s\n' "$pid"
	done
	return 0
}

cmd_install() {
	require_root
	local missing
	missing=$(missing_tools)
	if [[ -z $missing ]]; then
		say "install: all tools present"
	else
		say "install: missing: $missing; installing ${APT_PACKAGES[*]}"
		command -v apt-get >/dev/null || die "apt-get not found; install ${APT_PACKAGES[*]} by hand"
		local before
		before=$(root_ns_samba)
		# Keep the packages' daemons from starting on the machine itself.
		if [[ ! -e /usr/sbin/policy-rc.d ]]; then
			trap 'rm -f /usr/sbin/policy-rc.d' EXIT
			printf '#!/bin/sh\n# written by ofmprobe lab.sh during apt-get install\nexit 101\n' >/usr/sbin/policy-rc.d
			chmod 0755 /usr/sbin/policy-rc.d
			POLICY_CREATED=1
		fi
		local rc=0
		{
			DEBIAN_FRONTEND=noninteractive timeout 900 apt-get update &&
				DEBIAN_FRONTEND=noninteractive timeout 1800 apt-get install -y --no-install-recommends "${APT_PACKAGES[@]}"
		} || rc=$?
		if ((POLICY_CREATED)); then
			rm -f /usr/sbin/policy-rc.d
			POLICY_CREATED=0
			trap - EXIT
		fi
		((rc == 0)) || die "apt-get failed (exit $rc)"
		missing=$(missing_tools)
		[[ -z $missing ]] || die "still missing after install: $missing"
		# Should a packaged daemon have started anyway, stop the ones the install started.
		local after pid stray=()
		after=$(root_ns_samba)
		for pid in $after; do
			grep -qx "$pid" <<<"$before" || stray+=("$pid")
		done
		if ((${#stray[@]})); then
			warn "install: samba daemons started in the root namespace (${stray[*]}); stopping them"
			if [[ -d /run/systemd/system ]]; then
				timeout 30 systemctl stop smbd nmbd samba-ad-dc 2>/dev/null || true
			fi
			for pid in "${stray[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
		fi
	fi
	local own
	own=$(root_ns_samba | tr '\n' ' ')
	[[ -z $own ]] || warn "note: Samba daemons run in the root namespace (PIDs $own); the lab does not use them"
	return 0
}

# ---------------------------------------------------------------- configuration

# write_smb_conf NAME writes the host's smb.conf and creates its directories.
write_smb_conf() {
	local name=$1 h addr nb
	h=$(hostdir "$name")
	addr=${ADDR[$name]}
	nb=${NBNAME[$name]}
	mkdir -p "$h"/{private,lock,state,cache,pid,ncalrpc,binddns,log,share}
	chmod 0700 "$h/private"
	{
		cat <<-EOF
			# ofmprobe lab host $name ($addr). Generated by lab.sh; edits are lost on the next up.
			[global]
			   workgroup = OFMLAB
			   netbios name = $nb
			   server string = ofmlab $name
			   server role = standalone server
			   interfaces = $addr/24
			   bind interfaces only = yes
			   private dir = $h/private
			   lock directory = $h/lock
			   state directory = $h/state
			   cache directory = $h/cache
			   pid directory = $h/pid
			   ncalrpc dir = $h/ncalrpc
			   binddns dir = $h/binddns
			   log file = $h/log/samba.log
			   max log size = 10000
			   log level = 1
			   passdb backend = tdbsam
			   map to guest = bad user
			   guest account = nobody
			   load printers = no
			   printing = bsd
			   printcap name = /dev/null
			   disable spoolss = yes
			   usershare path =
			   name resolve order = bcast
			   dns proxy = no
			   wins support = no
			   local master = no
			   preferred master = no
			   domain master = no
			   unix password sync = no
			   pam password change = no
			   obey pam restrictions = no
		EOF
		case $name in
		ofm90)
			# samba-dcerpcd runs standalone here and owns TCP 135.
			printf '   rpc start on demand helpers = no\n'
			;;
		ofm91)
			printf '   smb ports = 445\n   disable netbios = yes\n'
			;;
		smb1only)
			# SMB1 (NT LM 0.12) only: an SMB2 NEGOTIATE gets the connection closed.
			printf '   server min protocol = NT1\n   server max protocol = NT1\n'
			;;
		noguest)
			# A 9.1-style host that refuses guest logins outright: a guest session setup is a logon failure,
			# and so is a wrong password for the lab user, who exists here too.
			printf '   smb ports = 445\n   disable netbios = yes\n   map to guest = never\n'
			;;
		esac
		case $name in
		ofm90 | ofm91 | drop445 | lossy | smb1only | noguest | lossy2 | routed)
			cat <<-EOF

				[OFMLOG\$]
				   comment = OFM service log
				   path = $h/share
				   read only = yes
				   guest ok = yes
			EOF
			;;
		authshare)
			cat <<-EOF

				[OFMLOG\$]
				   comment = OFM service log
				   path = $h/share
				   read only = yes
				   guest ok = no
				   valid users = $LAB_USER
			EOF
			;;
		esac
	} >"$h/smb.conf"
	if [[ $name != noshare ]]; then
		write_ofm_files "$h/share" "$nb"
	fi
}

# write_ofm_files DIR NBNAME puts the two files the OFM UI reads into a share.
write_ofm_files() {
	local dir=$1 nb=$2
	cat >"$dir/OFMNT.LOG" <<-'EOF'
		2024-03-11 08:00:01 OFM service starting, version 9.0.4
		2024-03-11 08:00:02 Loaded licence file, 25 seats
		2024-03-11 08:00:02 Listening on named pipe \\.\pipe\OFMSVC
		2024-03-11 08:00:03 Mailslot \\.\mailslot\OFM open
		2024-03-11 08:14:27 Client WS-0112 connected
	EOF
	# Opaque bytes (the format is not public) followed by one printable line.
	printf '\x4f\x46\x4d\x00\x02\x00\x00\x00\x10\x27\x00\x00\xc6\x12\x00\xff\xfe\x01\x7f\x00' >"$dir/OFMNT.ADR"
	printf 'OFMADR host=%s port=10006 proto=tcp\r\n' "$nb" >>"$dir/OFMNT.ADR"
	chmod 0755 "$dir"
	chmod 0644 "$dir/OFMNT.LOG" "$dir/OFMNT.ADR"
}

write_scan_conf() {
	local h
	h=$(hostdir scan)
	mkdir -p "$h"/{private,lock,state,cache,pid,ncalrpc,log}
	cat >"$h/smb.conf" <<-EOF
		# Client-side smb.conf for tools run in the scanner namespace (nmblookup -s, smbclient -s).
		[global]
		   workgroup = OFMLAB
		   netbios name = OFMSCAN
		   interfaces = ${ADDR[scan]}/24
		   bind interfaces only = yes
		   name resolve order = bcast
		   private dir = $h/private
		   lock directory = $h/lock
		   state directory = $h/state
		   cache directory = $h/cache
		   pid directory = $h/pid
		   ncalrpc dir = $h/ncalrpc
		   log file = $h/log/client.log
	EOF
}

write_nft() {
	local name=$1 f
	f=$(hostdir "$name")/nft.conf
	case $name in
	ofm91)
		cat >"$f" <<-'EOF'
			# ofm91: NetBIOS filtered (silently dropped); SMB only on 445.
			table inet ofmlab {
				chain input {
					type filter hook input priority 0; policy accept;
					udp dport { 137, 138 } drop
					tcp dport 139 drop
				}
			}
		EOF
		;;
	drop445)
		cat >"$f" <<-'EOF'
			# drop445: SMB direct over TCP filtered; NetBIOS session service open.
			table inet ofmlab {
				chain input {
					type filter hook input priority 0; policy accept;
					tcp dport 445 drop
				}
			}
		EOF
		;;
	lossy)
		# numgen random mod 100 yields 0-99, and nft refuses "< 100".
		local rule="iifname \"eth0\" udp dport 137 numgen random mod 100 < ${OFMLAB_LOSS} drop"
		((OFMLAB_LOSS < 100)) || rule='iifname "eth0" udp dport 137 drop'
		((OFMLAB_LOSS > 0)) || rule='# OFMLAB_LOSS=0: nothing is dropped'
		cat >"$f" <<-EOF
			# lossy: ${OFMLAB_LOSS} % of the NetBIOS name service datagrams that arrive from the lab network are lost
			# (OFMLAB_LOSS). Queries over lo (lab.sh's own readiness check) are not.
			table inet ofmlab {
				chain input {
					type filter hook input priority 0; policy accept;
					${rule}
				}
			}
		EOF
		;;
	lossy2)
		# numgen random mod 100 yields 0-99: "< 0" drops nothing.
		cat >"$f" <<-EOF
			# lossy2: ${OFMLAB_LOSS2} % of every packet is lost on eth0, in both directions, TCP included (OFMLAB_LOSS2).
			# lo (lab.sh's own readiness check) is spared. ARP is not IP, so not in an inet table: the host stays there.
			table inet ofmlab {
				chain input {
					type filter hook input priority 0; policy accept;
					iifname "eth0" numgen random mod 100 < ${OFMLAB_LOSS2} drop
				}
				chain output {
					type filter hook output priority 0; policy accept;
					oifname "eth0" numgen random mod 100 < ${OFMLAB_LOSS2} drop
				}
			}
		EOF
		;;
	rtr2)
		cat >"$f" <<-'EOF'
			# rtr2: the firewall in front of 198.18.2.0/24 (host routed). It answers for some ports itself.
			table inet ofmlab {
				chain forward {
					type filter hook forward priority 0; policy accept;
					# walled (198.18.2.11): every port of every protocol rejected, so every probe gets an answer from
					# the firewall and none from the host
					ip daddr 198.18.2.11 meta l4proto { tcp, udp } reject with icmp type admin-prohibited
					ip daddr 198.18.2.0/24 tcp dport 135 drop
					ip daddr 198.18.2.0/24 tcp dport 445 reject with icmp type admin-prohibited
					ip daddr 198.18.2.0/24 tcp dport 139 reject with icmp type host-prohibited
					# everything else, UDP 137 and 138 (to a real nmbd) included, is forwarded
				}
			}
		EOF
		;;
	bulk)
		cat >"$f" <<-'EOF'
			# bulk: port states by destination /22 of 198.18.16.0/20, and by /18 of 198.19.0.0/16.
			#   open:     198.18.16.0/22, 198.19.0.0/18    open 135 139 445, closed 53 (nothing listens); UDP 137 answers
			#   closed:   198.18.20.0/22, 198.19.64.0/18   closed (RST) 53 135 139 445; UDP 137 closed (ICMP port unreachable)
			#   dropped:  198.18.24.0/22, 198.19.128.0/18  filtered (dropped) 53 135 139 445; UDP 137 dropped
			#   mixed:    198.18.28.0/22, 198.19.192.0/18  open 445, closed 139 and 53, filtered 135; UDP 137 answers
			# Other UDP ports: nothing listens, so closed everywhere.
			table inet ofmlab {
				set closed { type ipv4_addr; flags interval; elements = { 198.18.20.0/22, 198.19.64.0/18 } }
				set dropped { type ipv4_addr; flags interval; elements = { 198.18.24.0/22, 198.19.128.0/18 } }
				set mixed { type ipv4_addr; flags interval; elements = { 198.18.28.0/22, 198.19.192.0/18 } }
				chain input {
					type filter hook input priority 0; policy accept;
					ip daddr @closed tcp dport { 53, 135, 139, 445 } reject with tcp reset
					ip daddr @dropped tcp dport { 53, 135, 139, 445 } drop
					ip daddr @mixed tcp dport 139 reject with tcp reset
					ip daddr @mixed tcp dport 135 drop
					# 53 of the open and mixed hosts, where nothing listens: refused here rather than by the TCP
					# stack, whose resets come from a control socket with a small send buffer that a reset waiting
					# in slow mode's delay line holds, so a slow sweep lost resets (see LAB-NOTES.md).
					tcp dport 53 reject with tcp reset
					# reject in an inet table sends ICMP port unreachable for IPv4.
					ip daddr @closed udp dport 137 reject
					ip daddr @dropped udp dport 137 drop
				}
			}
		EOF
		;;
	esac
	in_ns "$name" nft -f "$f"
}

# netns_etc_ours succeeds when NETNS_ETC is absent, empty, or holds only a
# hosts file that this script wrote.
netns_etc_ours() {
	[[ -e $NETNS_ETC ]] || return 0
	[[ -d $NETNS_ETC && ! -L $NETNS_ETC ]] || return 1
	local content
	content=$(ls -A "$NETNS_ETC")
	[[ -z $content ]] && return 0
	[[ $content == hosts && -f $NETNS_ETC/hosts && ! -L $NETNS_ETC/hosts ]] || return 1
	[[ $(head -n 1 "$NETNS_ETC/hosts") == "$NETNS_MARKER" ]]
}

# write_scan_hosts gives the scanner namespace an /etc/hosts naming every lab
# host NAME.lab (and NAME), plus ofm-multi.lab with two addresses.
write_scan_hosts() {
	netns_etc_ours || die "$NETNS_ETC exists and was not written by the lab; refusing to touch it"
	mkdir -p "$NETNS_ETC"
	local name
	{
		printf '%s\n' "$NETNS_MARKER"
		printf '127.0.0.1\tlocalhost\n'
		for name in "${HOSTS[@]}"; do
			printf '%s\t%s.lab %s\n' "${ADDR[$name]}" "$name" "$name"
		done
		printf '# one name, two addresses\n'
		printf '%s\tofm-multi.lab\n' "${ADDR[ofm90]}" "${ADDR[ofm91]}"
	} >"$NETNS_ETC/hosts.new"
	chmod 0644 "$NETNS_ETC/hosts.new"
	mv -f "$NETNS_ETC/hosts.new" "$NETNS_ETC/hosts"
}

remove_scan_hosts() {
	[[ -e $NETNS_ETC ]] || return 0
	if ! netns_etc_ours; then
		warn "$NETNS_ETC was not written by the lab; leaving it"
		return 0
	fi
	rm -f "$NETNS_ETC/hosts"
	rmdir "$NETNS_ETC"
}

ensure_lab_user() {
	if ! id -u "$LAB_USER" >/dev/null 2>&1; then
		say "adding system user $LAB_USER (no home, no login shell)"
		useradd --system --no-create-home --shell /usr/sbin/nologin "$LAB_USER"
	fi
	local conf out host
	for host in authshare noguest; do
		conf=$(hostdir "$host")/smb.conf
		out=$(printf '%s\n%s\n' "$OFMLAB_PASSWORD" "$OFMLAB_PASSWORD" |
			in_ns "$host" timeout 20 smbpasswd -c "$conf" -a -s "$LAB_USER" 2>&1) ||
			die "smbpasswd -a $LAB_USER on $host failed: $out"
	done
	(
		umask 077
		printf '%s' "$OFMLAB_PASSWORD" >"$OFMLAB_DIR/password"
	)
	chmod 0600 "$OFMLAB_DIR/password"
}

# ---------------------------------------------------------------- network

ns_sysctls() {
	local n=$1
	in_ns "$n" sysctl -qw net.ipv4.icmp_ratemask=0
	if in_ns "$n" test -e /proc/sys/net/ipv4/icmp_ratelimit; then
		in_ns "$n" sysctl -qw net.ipv4.icmp_ratelimit=0
	fi
	# IPv4 only: no IPv6 link-local chatter on the bridge.
	if in_ns "$n" test -e /proc/sys/net/ipv6/conf/all/disable_ipv6; then
		in_ns "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	fi
}

build_network() {
	ip netns add "$SWITCH"
	ns_sysctls sw
	ip -n "$SWITCH" link set lo up
	ip -n "$SWITCH" link add br0 type bridge
	ip -n "$SWITCH" link set br0 up
	local name
	for name in "${HOSTS[@]}"; do
		ip netns add "$(ns "$name")"
		ns_sysctls "$name"
		if [[ " ${OFF_BRIDGE[*]} " == *" $name "* ]]; then
			ip -n "$(ns "$name")" link set lo up
			continue
		fi
		# The veth pair is created between the two lab namespaces directly:
		# nothing ever exists in the root namespace.
		ip -n "$(ns "$name")" link add eth0 type veth peer name "v-$name" netns "$SWITCH"
		ip -n "$SWITCH" link set "v-$name" master br0
		ip -n "$SWITCH" link set "v-$name" up
		ip -n "$(ns "$name")" link set lo up
		ip -n "$(ns "$name")" addr add "${ADDR[$name]}/24" dev eth0
		ip -n "$(ns "$name")" link set eth0 up
	done
	ip -n "$SCANNER" route add "$BULK_RANGE" via "${ADDR[bulk]}"
	ip -n "$SCANNER" route add "$SITE_RANGE" via "${ADDR[bulk]}"
	build_routed
	# A lab LAN that gives up on ARP in 3 x 100 ms rather than 3 x 1 s: a connect to an address nobody owns then
	# fails with EHOSTUNREACH well inside one probe timeout, so "unreachable" is deterministic rather than racing
	# the kernel's 3-second ARP failure against the probe's own timeouts.
	in_ns scan sysctl -qw net.ipv4.neigh.eth0.retrans_time_ms=100 net.ipv4.neigh.eth0.mcast_solicit=3 net.ipv4.neigh.eth0.ucast_solicit=3
	ip -n "$(ns bulk)" route add local "$BULK_RANGE" dev lo
	ip -n "$(ns bulk)" route add local "$SITE_RANGE" dev lo
	in_ns bulk sysctl -qw net.core.somaxconn=16384 net.ipv4.tcp_max_syn_backlog=32768
}

# build_routed wires the routed segment: scan -> rtr1 -> rtr2 (firewall) -> routed, with static routes both ways
# and no default route anywhere.
build_routed() {
	local r1 r2 h
	r1=$(ns rtr1) r2=$(ns rtr2) h=$(ns routed)
	ip -n "$r1" link add eth1 type veth peer name eth0 netns "$r2"
	ip -n "$r1" addr add 198.18.1.1/30 dev eth1
	ip -n "$r1" link set eth1 up
	ip -n "$r2" addr add "${ADDR[rtr2]}/30" dev eth0
	ip -n "$r2" link set eth0 up
	ip -n "$r2" link add eth1 type veth peer name eth0 netns "$h"
	ip -n "$r2" addr add 198.18.2.1/24 dev eth1
	ip -n "$r2" link set eth1 up
	ip -n "$h" addr add "${ADDR[routed]}/24" dev eth0
	# A second address behind the same firewall, which rejects everything sent to it (the "walled" host).
	ip -n "$h" addr add "$WALLED/24" dev eth0
	ip -n "$h" link set eth0 up
	in_ns rtr1 sysctl -qw net.ipv4.ip_forward=1
	in_ns rtr2 sysctl -qw net.ipv4.ip_forward=1
	# Linux rate-limits the ICMP errors it sends to a destination (a burst of 6, then one a second): a scan of the
	# walled host's eight probes would lose some rejections to it. Real firewalls limit too, and retries cover that;
	# the lab's tests want every rejection.
	in_ns rtr2 sysctl -qw net.ipv4.icmp_ratelimit=0
	ip -n "$SCANNER" route add "$LINK_NET" via "${ADDR[rtr1]}"
	ip -n "$SCANNER" route add "$ROUTED_NET" via "${ADDR[rtr1]}"
	ip -n "$r1" route add "$ROUTED_NET" via "${ADDR[rtr2]}"
	ip -n "$r2" route add 198.18.0.0/24 via 198.18.1.1
	ip -n "$h" route add 198.18.0.0/24 via 198.18.2.1
	ip -n "$h" route add "$LINK_NET" via 198.18.2.1
}

# ---------------------------------------------------------------- daemons

# start_daemon NAME CMD... runs a self-daemonising command in the host's
# namespace with no descriptor of ours open (fd 9 is the lab lock).
start_daemon() {
	local name=$1 h
	shift
	h=$(hostdir "$name")
	ip netns exec "$(ns "$name")" "$@" 9<&- </dev/null >>"$h/log/start.log" 2>&1 ||
		die "$name: $1 failed to start; see $h/log/start.log"
}

# start_samba NAME starts the host's Samba daemons in its namespace. They fork
# (-D); `down` finds them with `ip netns pids`.
start_samba() {
	local name=$1 h conf
	h=$(hostdir "$name")
	conf=$h/smb.conf
	if [[ $name == ofm90 ]]; then
		start_daemon "$name" "$(dcerpcd_path)" -D --libexec-rpcds -s "$conf" -l "$h/log"
	fi
	start_daemon "$name" smbd -D -s "$conf" -l "$h/log"
	case " ${NMBD_HOSTS[*]} " in
	*" $name "*)
		if [[ -n ${NMBD_NBNAME[$name]:-} ]]; then
			start_daemon "$name" nmbd -D -s "$conf" -l "$h/log" --option="netbios name=${NMBD_NBNAME[$name]}"
		else
			start_daemon "$name" nmbd -D -s "$conf" -l "$h/log"
		fi
		;;
	esac
}

# start_labd NAME MODE ADDR[,ADDR...] [FLAG...] starts one labd in the host's namespace (ADDR "" for a mode that
# listens on nothing, such as nfqdelay).
start_labd() {
	local name=$1 mode=$2 listen=$3 h
	shift 3
	local extra=("$@")
	[[ -z $listen ]] || extra=(-listen "$listen" "${extra[@]}")
	h=$(hostdir "$name")
	mkdir -p "$h/log" "$h/pid"
	# The subshell execs, so nothing of this script stays behind as a parent.
	# labd and the redirection both append to the log (O_APPEND), so runtime
	# errors on stderr land next to labd's own lines.
	# shellcheck disable=SC2094
	(exec ip netns exec "$(ns "$name")" setsid "$OFMLAB_DIR/labd" -mode "$mode" "${extra[@]}" \
		-pidfile "$h/pid/labd-$mode.pid" -log "$h/log/labd-$mode.log") \
		9<&- </dev/null >>"$h/log/labd-$mode.log" 2>&1 &
}

build_labd() {
	command -v go >/dev/null || die "go not found in PATH; the lab builds testdata/lab/labd with it"
	if [[ -z ${GOCACHE:-} && -z ${XDG_CACHE_HOME:-} && -z ${HOME:-} ]]; then
		export GOCACHE=$OFMLAB_DIR/go-build-cache
	fi
	(cd "$REPO_ROOT" && timeout 300 go build -buildvcs=false -o "$OFMLAB_DIR/labd" ./testdata/lab/labd) ||
		die "building labd failed"
}

# ---------------------------------------------------------------- health

# listeners NAME prints "tcp PORT" and "udp PORT" for every listening socket
# in the host's namespace (one ss call).
listeners() {
	in_ns "$1" ss -Hltun 2>/dev/null | awk '{ n = split($5, a, ":"); print $1, a[n] }' | sort -u
}

# nbstat_ok FROM ADDR NAME succeeds when ADDR answers a node status query,
# sent from host FROM's namespace with FROM's smb.conf, with the unique name
# NAME<20>. nmblookup resends about once a second, so 3 s are three tries.
nbstat_ok() {
	local from=$1 addr=$2 nb=$3 out
	out=$(in_ns "$from" timeout 3 nmblookup -s "$(hostdir "$from")/smb.conf" -A "$addr" 2>/dev/null) || return 1
	grep -Eq "^[[:space:]]*${nb}[[:space:]]+<20>.*<ACTIVE>" <<<"$out"
}

# problems prints one line per thing that is not up; nothing means fully up.
# The NetBIOS queries (slow when they fail) run only once all else is up.
problems() {
	local out
	out=$(local_problems)
	if [[ -n $out ]]; then
		printf '%s\n' "$out"
		return 0
	fi
	local name from
	for name in "${NMBD_HOSTS[@]}"; do
		# lossy drops OFMLAB_LOSS % of the queries from the network on purpose
		# (up to all of them), lossy2 OFMLAB_LOSS2 % of everything: ask their nmbd over their own lo instead.
		from=scan
		[[ $name == lossy || $name == lossy2 ]] && from=$name
		nbstat_ok "$from" "${ADDR[$name]}" "${NMBD_NBNAME[$name]:-${NBNAME[$name]}}" ||
			printf '%s: no NetBIOS node status answer naming %s\n' "$name" "${NMBD_NBNAME[$name]:-${NBNAME[$name]}}"
	done
	nbstat_ok scan "$BULK_PROBE" "$BULK_PROBE_NAME" ||
		printf 'bulk: no NetBIOS node status answer naming %s from %s\n' "$BULK_PROBE_NAME" "$BULK_PROBE"
	nbstat_ok scan "$SITE_PROBE" "$SITE_PROBE_NAME" ||
		printf 'bulk: no NetBIOS node status answer naming %s from %s\n' "$SITE_PROBE_NAME" "$SITE_PROBE"
	return 0
}

# local_problems checks namespaces, state, listeners and firewall tables.
local_problems() {
	local n p name have
	have=" $(lab_namespaces | tr '\n' ' ') "
	for n in sw "${HOSTS[@]}"; do
		[[ $have == *" $(ns "$n") "* ]] || printf 'namespace %s missing\n' "$(ns "$n")"
	done
	[[ -d $OFMLAB_DIR && -e $OFMLAB_DIR/$MARKER ]] || printf 'state dir %s missing\n' "$OFMLAB_DIR"
	[[ -x $OFMLAB_DIR/labd ]] || printf 'labd binary missing\n'
	if ! netns_etc_ours; then
		printf '%s is not the lab'"'"'s\n' "$NETNS_ETC"
	elif [[ ! -f $NETNS_ETC/hosts ]]; then
		printf 'scanner hosts file %s/hosts missing\n' "$NETNS_ETC"
	fi
	[[ $have == *" $SCANNER "* ]] || return 0
	local socks
	for name in "${HOSTS[@]}"; do
		[[ $have == *" $(ns "$name") "* ]] || continue
		[[ -n ${WANT_TCP[$name]:-}${WANT_UDP[$name]:-} ]] || continue
		socks=" $(listeners "$name" | tr '\n' ' ') "
		for p in ${WANT_TCP[$name]:-}; do
			[[ $socks == *" tcp $p "* ]] || printf '%s: nothing listens on tcp %s\n' "$name" "$p"
		done
		for p in ${WANT_UDP[$name]:-}; do
			[[ $socks == *" udp $p "* ]] || printf '%s: nothing listens on udp %s\n' "$name" "$p"
		done
	done
	for name in "${NFT_HOSTS[@]}"; do
		[[ $have == *" $(ns "$name") "* ]] || continue
		in_ns "$name" nft list table inet ofmlab >/dev/null 2>&1 || printf '%s: nftables table inet ofmlab missing\n' "$name"
	done
	[[ $have != *" $(ns bulk) "* ]] || slow_problems
	return 0
}

# wait_ready waits until every daemon listens, or dies with the logs of the
# hosts that are not ready.
wait_ready() {
	local deadline=$((SECONDS + OFMLAB_WAIT)) left
	while :; do
		left=$(problems)
		[[ -z $left ]] && return 0
		((SECONDS < deadline)) || break
		sleep 0.2
	done
	warn "not up after ${OFMLAB_WAIT}s:"
	printf '  %s\n' "$left" >&2
	local name f
	for name in "${HOSTS[@]}"; do
		grep -q "^$name:" <<<"$left" || continue
		for f in "$(hostdir "$name")"/log/*; do
			[[ -f $f && -s $f ]] || continue
			printf '\n==> %s (last 25 lines) <==\n' "$f" >&2
			tail -n 25 "$f" >&2
		done
	done
	die "up failed; the lab is left as is for debugging (lab.sh status, lab.sh down)"
}

# ---------------------------------------------------------------- slow mode of the site /16

# slow_ipt ARGS... runs iptables (the nf_tables flavour when there is one) in the bulk namespace.
slow_ipt() {
	local ipt=iptables
	command -v iptables-nft >/dev/null 2>&1 && ipt=iptables-nft
	in_ns bulk "$ipt" -w 5 "$@"
}

slow_rule_present() { slow_ipt -C "${SLOW_RULE[@]}" >/dev/null 2>&1; }
slow_pidfile() { printf '%s/pid/labd-nfqdelay.pid' "$(hostdir bulk)"; }

# slow_delayer_pid prints the PID of the running nfqdelay labd, if it runs in the bulk namespace.
slow_delayer_pid() {
	local pid
	pid=$(cat "$(slow_pidfile)" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	ip netns pids "$(ns bulk)" 2>/dev/null | grep -qx "$pid" || return 1
	printf '%s' "$pid"
}

# slow_on starts the delayer, waits until it has bound the queue, then sends the site /16's packets through it.
slow_on() {
	local min=$OFMLAB_SLOW_MIN_MS max=$OFMLAB_SLOW_MAX_MS h log i
	if [[ -e $OFMLAB_DIR/$SLOW_STATE ]]; then
		if [[ $(cat "$OFMLAB_DIR/$SLOW_STATE") == "$min $max" ]] && slow_rule_present && slow_delayer_pid >/dev/null; then
			say "slow mode already on (${min}-${max} ms)"
			return 0
		fi
		slow_off
	fi
	h=$(hostdir bulk)
	log=$h/log/labd-nfqdelay.log
	local before=0
	[[ -f $log ]] && before=$(wc -l <"$log")
	start_labd bulk nfqdelay "" -queue "$SLOW_QUEUE" -delay-min "${min}ms" -delay-max "${max}ms"
	for ((i = 0; i < 100; i++)); do
		tail -n +"$((before + 1))" "$log" 2>/dev/null | grep -q 'bound to nfqueue' && slow_delayer_pid >/dev/null && break
		sleep 0.05
	done
	if ! slow_delayer_pid >/dev/null; then
		tail -n 20 "$log" >&2 || true
		die "slow mode: labd -mode nfqdelay did not start; see $log"
	fi
	slow_rule_present || slow_ipt -A "${SLOW_RULE[@]}"
	printf '%s %s\n' "$min" "$max" >"$OFMLAB_DIR/$SLOW_STATE"
	say "slow mode on: every packet from $SITE_RANGE leaves ofmlab-bulk ${min}-${max} ms late (uniform)"
}

# slow_off takes the rule out first (no new packets are queued), then stops the delayer, which lets go of every
# packet it still holds before it exits.
slow_off() {
	local i pid
	for ((i = 0; i < 5; i++)); do
		slow_rule_present || break
		slow_ipt -D "${SLOW_RULE[@]}"
	done
	if pid=$(slow_delayer_pid); then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	fi
	rm -f "$OFMLAB_DIR/$SLOW_STATE"
	say "slow mode off"
}

# slow_problems prints what is inconsistent about the slow mode.
slow_problems() {
	if [[ -e $OFMLAB_DIR/$SLOW_STATE ]]; then
		slow_rule_present || printf 'bulk: slow mode is on but the NFQUEUE rule is missing\n'
		slow_delayer_pid >/dev/null || printf 'bulk: slow mode is on but labd -mode nfqdelay is not running\n'
	else
		slow_rule_present && printf 'bulk: NFQUEUE rule present but slow mode is off\n'
	fi
	return 0
}

cmd_slow() {
	require_root
	check_state_dir
	check_env
	local what=${1:-status}
	case $what in
	on | off)
		lab_lock
		# Slow mode's own inconsistencies are what on and off repair; anything else means the lab is not up.
		[[ -n $(lab_namespaces) && -z $(local_problems | grep -v '^bulk: slow mode\|^bulk: NFQUEUE' || true) ]] ||
			die "the lab is not up (lab.sh up first)"
		"slow_$what"
		;;
	status)
		if [[ -e $OFMLAB_DIR/$SLOW_STATE ]]; then
			read -r min max <"$OFMLAB_DIR/$SLOW_STATE"
			say "slow mode on: ${min}-${max} ms"
			[[ -z $(slow_problems) ]] || { slow_problems; exit 1; }
			return 0
		fi
		say "slow mode off"
		exit 1
		;;
	*) die "usage: lab.sh slow on|off|status" ;;
	esac
}

# ---------------------------------------------------------------- commands

cmd_up() {
	require_root
	check_state_dir
	check_env
	lab_lock
	if [[ -n $(lab_namespaces) && -z $(problems) ]]; then
		say "already up"
		apply_slow_env
		return 0
	fi
	if [[ -n $(lab_namespaces) || -d $OFMLAB_DIR ]]; then
		say "partially up; taking it down first"
		lab_down
	fi
	local start=$SECONDS
	cmd_install
	mkdir -p "$OFMLAB_DIR"
	chmod 0755 "$OFMLAB_DIR"
	touch "$OFMLAB_DIR/$MARKER"
	say "building labd"
	build_labd

	say "creating namespaces"
	build_network

	say "writing configuration"
	local name
	for name in "${HOSTS[@]}"; do mkdir -p "$(hostdir "$name")"/{log,pid}; done
	for name in "${!NBNAME[@]}"; do write_smb_conf "$name"; done
	write_scan_conf
	write_scan_hosts
	ensure_lab_user
	for name in "${NFT_HOSTS[@]}"; do write_nft "$name"; done

	say "starting daemons"
	for name in "${!NBNAME[@]}"; do start_samba "$name"; done
	start_labd ofm90 accept 0.0.0.0:53
	start_labd tarpit hold 0.0.0.0:53,0.0.0.0:135,0.0.0.0:139,0.0.0.0:445
	start_labd garbage nbgarbage 0.0.0.0:137
	start_labd garbage nbssgarbage 0.0.0.0:139
	start_labd garbage badsmb 0.0.0.0:445
	start_labd bulk accept 0.0.0.0:135,0.0.0.0:139,0.0.0.0:445
	start_labd bulk nbstat 0.0.0.0:137

	say "waiting (at most ${OFMLAB_WAIT}s) for every daemon to listen"
	wait_ready
	apply_slow_env
	say "up in $((SECONDS - start))s (state in $OFMLAB_DIR)"
}

# apply_slow_env switches the site /16's slow mode as OFMLAB_SLOW16 says (unset: as it is).
apply_slow_env() {
	case $OFMLAB_SLOW16 in
	1) slow_on ;;
	0) [[ ! -e $OFMLAB_DIR/$SLOW_STATE ]] || slow_off ;;
	esac
	return 0
}

# lab_down ends every process in the lab's namespaces (by PID), deletes the
# namespaces and removes the state directory.
lab_down() {
	local n pids=() pid i
	for n in $(lab_namespaces); do
		for pid in $(ip netns pids "$n" 2>/dev/null); do pids+=("$pid"); done
	done
	if ((${#pids[@]})); then
		say "stopping ${#pids[@]} lab processes"
		kill -TERM "${pids[@]}" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			local alive=()
			for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
			((${#alive[@]})) || break
			sleep 0.1
		done
		for n in $(lab_namespaces); do
			for pid in $(ip netns pids "$n" 2>/dev/null); do
				warn "process $pid in $n ignored SIGTERM; sending SIGKILL"
				kill -KILL "$pid" 2>/dev/null || true
			done
		done
		for ((i = 0; i < 20; i++)); do
			local left=""
			for n in $(lab_namespaces); do left+=$(ip netns pids "$n" 2>/dev/null); done
			[[ -z $left ]] && break
			sleep 0.1
		done
	fi
	for n in $(lab_namespaces); do
		ip netns del "$n"
	done
	remove_scan_hosts
	if [[ -d $OFMLAB_DIR ]]; then
		[[ -e $OFMLAB_DIR/$MARKER ]] || [[ -z $(ls -A "$OFMLAB_DIR") ]] ||
			die "$OFMLAB_DIR is not a lab state dir; not removing it"
		rm -rf --one-file-system "$OFMLAB_DIR"
	fi
}

cmd_down() {
	require_root
	check_state_dir
	lab_lock
	lab_down
	say "down"
}

cmd_status() {
	require_root
	local name n
	for name in sw "${HOSTS[@]}"; do
		n=$(ns "$name")
		if ! ip netns list | awk '{print $1}' | grep -qx "$n"; then
			printf '== %s: absent\n\n' "$n"
			continue
		fi
		printf '== %s %s\n' "$n" "${ADDR[$name]:-(switch)}"
		ip -n "$n" -brief addr show
		ip -n "$n" route show
		if [[ $name == bulk ]]; then
			ip -n "$n" route show table local type local dev lo | grep -v '^local 127\.' || true
			if [[ -e $OFMLAB_DIR/$SLOW_STATE ]]; then
				printf 'slow mode ON for %s: %s ms (min max); NFQUEUE %s -> labd -mode nfqdelay\n' "$SITE_RANGE" "$(cat "$OFMLAB_DIR/$SLOW_STATE")" "$SLOW_QUEUE"
			else
				printf 'slow mode off for %s\n' "$SITE_RANGE"
			fi
		fi
		ip netns exec "$n" ss -ltnup
		echo
	done
	if [[ -f $NETNS_ETC/hosts ]]; then
		printf '== %s/hosts (the scanner'"'"'s /etc/hosts)\n' "$NETNS_ETC"
		cat "$NETNS_ETC/hosts"
		echo
	fi
	local left
	left=$(problems)
	if [[ -z $left ]]; then
		say "UP (state in $OFMLAB_DIR)"
		return 0
	fi
	say "NOT fully up:"
	printf '  %s\n' "$left"
	exit 1
}

cmd_exec() {
	require_root
	(($#)) || die "usage: lab.sh exec CMD [ARG...]"
	ip netns list | awk '{print $1}' | grep -qx "$SCANNER" || die "the lab is not up ($SCANNER missing)"
	exec ip netns exec "$SCANNER" "$@"
}

usage() {
	cat <<-'EOF'
		usage: lab.sh COMMAND   (as root)
		  install      install missing packages (samba smbclient nmap nbtscan nftables iptables iproute2 procps time chromium)
		  up           build and start the lab (idempotent)
		  down         stop every lab process, delete the namespaces and the state dir
		  status       show addresses and listening sockets; exit 0 only if fully up
		  slow on|off|status
		               switch the site /16 (198.19.0.0/16) to answering late (OFMLAB_SLOW_MIN_MS..OFMLAB_SLOW_MAX_MS,
		               default 150-900 ms) or back; status exits 0 only when slow mode is on and working
		  exec CMD...  run CMD inside the scanner namespace (ofmlab-scan, 198.18.0.2)
	EOF
}

main() {
	local cmd=${1:-}
	(($#)) && shift
	case $cmd in
	install) cmd_install ;;
	up) cmd_up ;;
	down) cmd_down ;;
	status) cmd_status ;;
	slow) cmd_slow "$@" ;;
	exec) cmd_exec "$@" ;;
	-h | --help | help) usage ;;
	*)
		usage >&2
		exit 2
		;;
	esac
}

main "$@"
