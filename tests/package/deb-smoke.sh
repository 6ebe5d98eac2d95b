#!/bin/bash
# SPDX-License-Identifier: MIT
# The Debian package, installed and started the way its systemd unit
# starts it, where there is no systemd as PID 1: in a throw-away root
# made from Debian's packages (scripts/mkbase.sh's bookworm minbase), apt
# installs the built .deb with its dependencies (the maintainer scripts
# run: the static user from sysusers.d, the conffile), then the unit's
# ExecStart= runs as its user, with the environment, directories and
# umask the unit asks systemd for (StateDirectory=, CacheDirectory=,
# LogsDirectory=, UMask=, Type=notify's NOTIFY_SOCKET). Checks: the
# unit's ExecReload= check (-t) passes; READY=1 once the port accepts
# connections; GET /healthz and GET / answer 200 and GET /ca.crt serves
# the CA the daemon made in its StateDirectory; SIGTERM sends STOPPING=1
# and the daemon exits 0. Not part of make check (a package build and an
# apt install take minutes); run it by hand after dpkg-buildpackage:
#   sudo tests/package/deb-smoke.sh DIR-WITH-THE-DEBS [BASE.tar]
# Needs root (chroot, unshare), python3, curl, ip; the apt sources of the
# host must be reachable. The daemon runs in a network namespace of its
# own, so its port 3128 is free whatever else runs here.
set -euo pipefail
debs=${1:?usage: deb-smoke.sh DIR-WITH-THE-DEBS [BASE.tar]}
base=${2:-${DRP_IT_CACHE:-/var/cache/drp-tests}/bookworm-minbase.tar}
src=$(cd "$(dirname "$0")/../.." && pwd)
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() {
	printf 'FAIL: %s\n' "$*" >&2
	exit 1
}
ok() { log "ok: $*"; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (chroot)" >&2; exit 77; }
user=docker-registry-proxy
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }

start_phase()
{
	# What the unit asks systemd for.
	val() { sed -n "s/^$1=//p" "$unit" | head -n 1; }
	start=$(val ExecStart)
	check=$(sed -n 's/^ExecReload=//p' "$unit" | head -n 1)
	[ "$(val DynamicUser)" = yes ] || fail "the unit no longer uses DynamicUser="
	[ "$(val Type)" = notify ] || fail "the unit is no longer Type=notify"
	umask_=$(val UMask)
	env=()
	for kind in State Cache Logs; do
		dir=$(val "${kind}Directory") mode=$(val "${kind}DirectoryMode")
		case $kind in State) base_dir=/var/lib ;; Cache) base_dir=/var/cache ;; Logs) base_dir=/var/log ;; esac
		install -d -m "$mode" -o "$(in_root id -u "$user")" -g "$(in_root id -g "$user")" "$root$base_dir/$dir"
		var=$(echo "$kind" | tr '[:lower:]' '[:upper:]')_DIRECTORY
		env+=("$var=$base_dir/$dir")
	done
	as_unit()
	{
		chroot --userspec="$user:$user" "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
			"${env[@]}" "$@"
	}

	# ExecReload='s first line: the configuration check.
	# shellcheck disable=SC2086 # the unit's command line, split as systemd does
	out=$(as_unit sh -c "umask $umask_; exec $check" 2>&1) || fail "$check: $out"
	ok "ExecReload's check: $(echo "$out" | tail -n 1)"

	# ExecStart=, Type=notify.
	if timeout 1 bash -c 'exec 3<>/dev/tcp/127.0.0.1/3128' 2>/dev/null; then
		fail "port 3128 is in use"
	fi
	sock=@drp-deb-smoke-$$
	notify=$root/tmp/notify.log
	python3 "$src/tests/integration/notifylistener.py" "$sock" 3128 "$notify" &
	pids+=($!)
	for _ in $(seq 50); do grep -q listening "$notify" 2>/dev/null && break; sleep 0.1; done
	# (chroot, env and sh exec one another: $! is the daemon, as MAINPID is)
	chroot --userspec="$user:$user" "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		"${env[@]}" NOTIFY_SOCKET="$sock" sh -c "umask $umask_; exec $start" \
		>"$root/tmp/daemon.log" 2>&1 &
	daemon=$!
	pids+=($daemon)
	for _ in $(seq 100); do
		grep -q '^READY=1' "$notify" && break
		kill -0 "$daemon" 2>/dev/null || fail "the daemon exited: $(tail -n 20 "$root/tmp/daemon.log")"
		sleep 0.1
	done
	grep -q '^READY=1.* port=open$' "$notify" || fail "no READY=1 with the port open: $(cat "$notify")"
	ok "READY=1, port 3128 accepting: $(grep '^READY=1' "$notify" | head -n 1)"
	uid=$(in_root id -u "$user")
	[ "$(ps -o uid= -p "$daemon" | tr -d ' ')" = "$uid" ] || fail "the daemon does not run as $user"
	[ "$(ps -o comm= -p "$daemon")" = docker-registry ] || fail "pid $daemon is not the daemon (ExecStart= is exec'ed)"
	ok "the daemon runs as $user (uid $uid)"
	for path in /healthz /; do
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:3128$path")
		[ "$code" = 200 ] || fail "GET $path: $code"
		ok "GET $path: 200"
	done
	curl -sf --max-time 10 -o "$root/tmp/ca-served.crt" http://127.0.0.1:3128/ca.crt || fail "GET /ca.crt failed"
	cmp -s "$root/tmp/ca-served.crt" "$root/var/lib/docker-registry-proxy/ca/ca.crt" ||
		fail "GET /ca.crt is not the CA in the StateDirectory"
	[ "$(stat -c %u "$root/var/lib/docker-registry-proxy/ca/ca.key")" = "$uid" ] ||
		fail "ca.key is not the daemon's own"
	ok "GET /ca.crt: the CA the daemon made in /var/lib/docker-registry-proxy/ca ($(openssl x509 -in "$root/tmp/ca-served.crt" -noout -subject))"
	kill -TERM "$daemon"
	rc=0
	for _ in $(seq 150); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
	wait "$daemon" || rc=$?
	[ "$rc" = 0 ] || fail "exit status after SIGTERM: $rc ($(tail -n 5 "$root/tmp/daemon.log"))"
	grep -q '^STOPPING=1' "$notify" || fail "no STOPPING=1: $(cat "$notify")"
	ok "SIGTERM: STOPPING=1, exit status 0"
}

# Second phase: in the network namespace the first phase made (below).
if [ -n "${DRP_DEB_SMOKE_ROOT:-}" ]; then
	root=$DRP_DEB_SMOKE_ROOT
	pids=()
	trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
	ip link set lo up
	unit=$root/lib/systemd/system/docker-registry-proxy.service
	start_phase
	exit 0
fi
deb=$(ls "$debs"/docker-registry-proxy_*_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || fail "no docker-registry-proxy_*.deb in $debs"
if [ ! -s "$base" ]; then
	log "making $base with mmdebstrap"
	mkdir -p "$(dirname "$base")"
	sh "$src/scripts/mkbase.sh" "$base"
fi

root=$(mktemp -d /tmp/drp-debroot.XXXXXX)
pids=()
cleanup()
{
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	mountpoint -q "$root/proc" && umount "$root/proc"
	[ -n "${KEEP:-}" ] || rm -rf "$root"
}
trap cleanup EXIT
tar -xf "$base" -C "$root"
mount -t proc proc "$root/proc"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# No service manager runs here: invoke-rc.d must not try to start one.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
cp "$deb" "$root/tmp/"
in_root apt-get update -q >"$root/tmp/apt.log" 2>&1 || fail "apt-get update: $(tail -n 5 "$root/tmp/apt.log")"
in_root apt-get install -y -q --no-install-recommends "/tmp/$(basename "$deb")" >>"$root/tmp/apt.log" 2>&1 ||
	fail "apt-get install: $(tail -n 20 "$root/tmp/apt.log")"
ok "installed $(basename "$deb") and its dependencies"

[ "$(in_root dpkg-query -W -f '${Status}' docker-registry-proxy)" = "install ok installed" ] ||
	fail "dpkg does not list the package as installed"
in_root dpkg-query -W -f '${Conffiles}\n' docker-registry-proxy |
	grep -q '^ /etc/docker-registry-proxy/docker-registry-proxy.ini ' ||
	fail "the configuration is not a conffile"
ok "the configuration is a conffile"
unit=$root/lib/systemd/system/docker-registry-proxy.service
[ -f "$unit" ] || fail "no unit at /lib/systemd/system"
in_root getent passwd "$user" >/dev/null || fail "no user $user (sysusers.d)"
ok "user $user exists"

# The daemon, in a network namespace of its own (port 3128 and the
# abstract notify socket are private to it).
DRP_DEB_SMOKE_ROOT=$root unshare --net -- "$0" "$debs" || fail "the start phase failed"
log "PASS: the package installs and starts as its unit starts it"
