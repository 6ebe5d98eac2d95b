#!/bin/sh
# SPDX-License-Identifier: MIT
# The systemd unit as make install writes it: systemd-analyze verify finds
# nothing to say (warnings fail too), and it has what a service that starts
# right after installation needs: Type=notify, no configuration file it
# requires, writable State/Cache/LogsDirectory under ProtectSystem=strict,
# and a reload that runs -t before SIGHUP. Skips (77) without
# systemd-analyze. Runs as any user.
set -eu
: "${top_srcdir:=.}" "${top_builddir:=.}"
in=$top_srcdir/etc/docker-registry-proxy.service.in
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "SKIP: no systemd-analyze"
	exit 77
fi
sbin=$(cd "$top_builddir" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unit=$tmp/docker-registry-proxy.service
sed -e "s|@sbindir[@]|$sbin|g" -e "s|@sysconfdir[@]|$tmp/etc|g" "$in" >"$unit"
fail=0
no() { echo "FAIL: $*"; fail=1; }
rc=0
out=$(cd "$tmp" && systemd-analyze verify --man=no "$unit" 2>&1) || rc=$?
if [ $rc -ne 0 ] || [ -n "$out" ]; then
	printf '%s\n' "$out"
	no "systemd-analyze verify: status $rc"
fi
key() { sed -n "s/^$1=//p" "$unit"; }
[ "$(key Type)" = notify ] || no "Type is $(key Type), not notify"
case "$(key ExecStart)" in
*" -c "*) no "ExecStart names a configuration file that make install does not install: $(key ExecStart)" ;;
esac
[ "$(key ExecReload | sed -n 1p)" = "$sbin/docker-registry-proxy -t" ] ||
	no "the first ExecReload is not the daemon's -t: $(key ExecReload | sed -n 1p)"
key ExecReload | sed -n 2p | grep -q -- '-HUP \$MAINPID$' || no "the second ExecReload does not send SIGHUP"
[ "$(key ProtectSystem)" = strict ] || no "ProtectSystem is not strict"
for d in State Cache Logs; do
	[ "$(key ${d}Directory)" = docker-registry-proxy ] || no "${d}Directory is not docker-registry-proxy"
done
[ $fail = 0 ] && echo "PASS: $unit"
exit $fail
