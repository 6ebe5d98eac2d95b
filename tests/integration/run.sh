#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Runs the integration scenarios against the proxy: starts the upstream
# registries, the CDN and the tunnel origin, pushes the test images straight
# to the registries, starts one proxy shared by every scenario, runs
# scenarios/*.sh (or the ones named), prints one line per scenario
# ("PASS|FAIL|SKIP|EXCL NAME SECONDS s") and "N passed, N failed,
# N skipped" (", N excluded" when DRP_IT_EXCLUDE names some).
#
# usage: run.sh [SCENARIO...]     e.g. run.sh pull_curl policy
# env:   DRP_PROXY            proxy binary (default $top_builddir/docker-registry-proxy)
#        ASAN_OPTIONS, UBSAN_OPTIONS  passed on, with log_path added: a
#                             sanitizer report of any process during a
#                             scenario fails it (drp_san_setup in lib.sh)
#        DRP_PROXY_WRAPPER    command prefix for the proxy (e.g. "valgrind -q")
#        DRP_IT_LARGE_MB      size of the large test layer (default 100)
#        DRP_IT_EXCLUDE="a b" do not run these scenarios: each still gets
#                             a line ("EXCL NAME") and the summary counts
#                             them (.ci/run's sanitizer pass, see there)
#        DRP_IT_SCENARIO_TIMEOUT  seconds per scenario (default 300)
#        DRP_IT_KEEP=1|failed keep the work dir (always / when something failed)
#        DRP_STRICT=1         nothing may skip (.ci/run sets it): a scenario
#                             that would skip (a tool missing, exit 77) is a
#                             FAIL, and so is running without root
#        DRP_IT_REPORT_FD=8   also write the per-scenario lines to fd 8
#                             (check-integration.sh: make check's output;
#                             scenarios and background processes do not
#                             inherit it)
# exit:  0 all passed, 1 a failure, 77 skipped (not root, or a tool missing;
#        never under DRP_STRICT=1)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ]; then
	drp_skip "the integration tests need root (they bind 127.0.0.x:443)"
fi
drp_require_tools $DRP_BASE_TOOLS
drp_require_python_module cryptography
drp_find_proxy

scenarios=()
if [ $# -gt 0 ]; then
	for s in "$@"; do
		s=${s%.sh}
		[ -f "$DRP_IT_DIR/scenarios/$s.sh" ] || drp_fail "no scenario $s"
		scenarios+=("$DRP_IT_DIR/scenarios/$s.sh")
	done
else
	scenarios=("$DRP_IT_DIR"/scenarios/*.sh)
fi
for s in ${DRP_IT_EXCLUDE:-}; do
	[ -f "$DRP_IT_DIR/scenarios/${s%.sh}.sh" ] || drp_fail "DRP_IT_EXCLUDE: no scenario $s"
done

# shellcheck disable=SC2034 # read by drp_fail in lib.sh
DRP_FAIL_SUMMARY="0 passed, 1 failed (set-up)"
drp_lock
drp_setup_work
drp_san_setup
t0=$SECONDS
drp_log "work dir $WORK, proxy $DRP_PROXY"
drp_start_upstreams
drp_build_images
drp_push_all
drp_log "upstreams ready and images pushed in $((SECONDS - t0)) s"

drp_proxy_conf shared "$(drp_free_port)"
drp_start_proxy shared
# Checked explicitly below, as a result of its own.
drp_unwatch_proxies
drp_log "shared proxy pid $PROXY_PID on $PROXY_URL"
DRP_IT_ENV=$WORK/env.sh
drp_write_env "$DRP_IT_ENV"
export DRP_IT_ENV
# Nothing so far may have reported (drp_san_setup).
drp_san_new "" || drp_fail "sanitizer report during the set-up"
unset DRP_FAIL_SUMMARY

passed=0 failed=0 skipped=0 excluded=0 failures=
result()
{
	local line
	case $2 in
	0) passed=$((passed + 1)) word=PASS ;;
	77) skipped=$((skipped + 1)) word=SKIP ;;
	excluded) excluded=$((excluded + 1)) word=EXCL ;;
	*) failed=$((failed + 1)) word=FAIL failures="$failures $1" ;;
	esac
	line=$(printf '%-5s %-22s %4d s' "$word" "$1" "$3")
	echo "$line"
	if [ -n "${DRP_IT_REPORT_FD:-}" ]; then
		echo "integration: $line" >&"$DRP_IT_REPORT_FD" || true
	fi
}

# Shows what a failed scenario printed and what the proxies logged meanwhile
# (the shared one, and any the scenario started).
show_failure()
{
	local name=$1 log=$2 pmark=$3 emark=$4 f
	echo "---- $name: last lines of its output"
	tail -n 40 "$log" | sed 's/^/    /'
	echo "---- shared proxy's log during $name"
	{
		log_since "$WORK/shared/proxy.log" "$pmark"
		log_since "$WORK/logs/proxy-shared.err" "$emark"
	} | tail -n 30 | sed 's/^/    /'
	for f in "$WORK/logs/proxy-own-$name.err" "$WORK/own-$name/proxy.log"; do
		[ -s "$f" ] || continue
		echo "---- $f"
		tail -n 30 "$f" | sed 's/^/    /'
	done
	echo "----"
}

for s in "${scenarios[@]}"; do
	name=$(basename "$s" .sh)
	log=$WORK/logs/scenario-$name.log
	case " ${DRP_IT_EXCLUDE:-} " in
	*" $name "* | *" $name.sh "*)
		result "$name" excluded 0
		continue
		;;
	esac
	pmark=$(log_mark "$WORK/shared/proxy.log")
	emark=$(log_mark "$WORK/logs/proxy-shared.err")
	san=$(drp_san_state)
	ts=$SECONDS
	rc=0
	timeout -k 10 "${DRP_IT_SCENARIO_TIMEOUT:-300}" bash "$s" >"$log" 2>&1 </dev/null 8>&- || rc=$?
	[ $rc = 124 ] && echo "FAIL: timed out after ${DRP_IT_SCENARIO_TIMEOUT:-300} s" >>"$log"
	# A sanitizer report of any process during the scenario (the shared
	# proxy's included) fails it, whatever its exit status.
	drp_san_new "$san" >>"$log" || rc=1
	# Scenarios skip through drp_skip, which fails under DRP_STRICT=1;
	# this catches any other exit 77.
	if [ $rc = 77 ] && drp_strict; then
		echo "FAIL: skipped (exit 77) under DRP_STRICT=1" >>"$log"
		rc=1
	fi
	result "$name" $rc $((SECONDS - ts))
	if [ $rc != 0 ] && [ $rc != 77 ]; then
		show_failure "$name" "$log" "$pmark" "$emark"
	fi
	if [ $rc = 77 ]; then
		grep -m1 '^SKIP' "$log" | sed 's/^/      /' || true
	fi
done

# The proxy must have survived everything, reported no memory error, and
# must exit by itself on SIGTERM (it drains).
san=$(drp_san_state)
ts=$SECONDS
rc=0
drp_check_proxy "$PROXY_PID" shared >"$WORK/logs/scenario-proxy_lifecycle.log" 2>&1 || rc=$?
drp_san_new "$san" >>"$WORK/logs/scenario-proxy_lifecycle.log" || rc=1
result proxy_lifecycle $rc $((SECONDS - ts))
[ $rc = 0 ] || sed 's/^/    /' "$WORK/logs/scenario-proxy_lifecycle.log"

summary="$passed passed, $failed failed, $skipped skipped"
[ $excluded = 0 ] || summary="$summary, $excluded excluded (DRP_IT_EXCLUDE)"
summary="$summary (total $((SECONDS - t0)) s)"
echo "$summary"
if [ -n "${DRP_IT_REPORT_FD:-}" ]; then
	echo "integration: $summary" >&"$DRP_IT_REPORT_FD" || true
fi
if [ $failed -gt 0 ]; then
	echo "failed:$failures (logs: $WORK/logs; DRP_IT_KEEP=failed keeps them)"
	exit 1
fi
exit 0
