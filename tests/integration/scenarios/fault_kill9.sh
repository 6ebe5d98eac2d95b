#!/bin/bash
# SPDX-License-Identifier: MIT
# kill -9 at 20 random moments of a mixed workload, restarting the proxy
# on the same cache each time. Five clients loop the whole time: skopeo
# pulls of the multi-arch index (registry.test), of small through the
# CDN redirect (redirect.test) and with the client's own credentials
# (basic.test); curl GETs of the 100 MiB layer, and of a 32 MiB blob
# from a slow upstream (bad.test at 8 MiB/s, so that fills are often in
# flight), and Range GETs of the layer. Between kills, objects are purged
# now and then (`cache purge` on the directory, the proxy being dead), so
# that cold fetches recur among warm ones. Every client operation that
# succeeds must have the exact bytes (a failure while the proxy is down
# or dying is expected). Every fourth moment is not random but a fill in
# flight: the slow blob is purged at the kill before, and the kill waits
# for the proxy to hold its spool file, so that at least 5 of the 20
# kills land mid-fill however the random moments fall. Then `cache verify` finds 0 bad objects, the
# cache's temp and spool directories are empty after a restart, and a
# final pull of every image is byte for byte. DRP_IT_SEED=N repeats a
# campaign's moments.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools skopeo curl
rate=$((8 * 1024 * 1024))
drp_start_fakeupstream $rate
seed=${DRP_IT_SEED:-$(($(date +%s) % 32768))}
RANDOM=$seed
drp_log "campaign seed $seed (DRP_IT_SEED=$seed repeats it)"

python3 -c 'import random,sys; sys.stdout.buffer.write(random.Random("drp-fault-kill9").randbytes(32 << 20))' \
	>"$SCEN/slowblob"
hex=$(sha256sum <"$SCEN/slowblob" | cut -c1-64)
slowblob=sha256:$hex
ln -f "$SCEN/slowblob" "$WORK/allblobs/$hex"
drp_at_exit "rm -f '$WORK/allblobs/$hex'"
large=$WORK/allblobs/${LARGE_LAYER#sha256:}
range_want=$(dd if="$large" bs=1M skip=1 count=1 status=none | sha256sum | cut -c1-64)

name=kill9
DRP_IT_REGISTRIES="registry.test basic.test redirect.test bad.test" drp_proxy_conf "$name" "$(drp_free_port)"
ini=$WORK/$name/proxy.ini
cdir=$WORK/$name/cache
drp_start_proxy "$name"
drp_unwatch_proxies

# ---- the workload: each client appends "ok", "err RC" or "BAD WHAT" to
# its file per operation, until $SCEN/stop exists.
stop=$SCEN/stop
# pace: after a failed operation (the proxy is down), a moment before the
# next one, so that a dead proxy is not hammered.
pace() { sleep 0.2; }
note() { echo "$2" >>"$SCEN/w.$1"; }
skopeo_loop()
{
	local w=$1 img=$2 ref=$3 dir=$SCEN/pull.$1 rc
	shift 3
	while [ ! -e "$stop" ]; do
		rm -rf "$dir"
		rc=0
		pskopeo --command-timeout 60s copy --quiet --retry-times 0 --all "$@" \
			"docker://$ref" "dir:$dir" >/dev/null 2>&1 || rc=$?
		if [ $rc = 0 ]; then
			if (check_pulled "$img" "$dir") >/dev/null 2>&1; then note "$w" ok; else note "$w" "BAD $ref"; fi
		else
			note "$w" "err $rc"
			pace
		fi
	done
	rm -rf "$dir"
}
curl_loop()
{
	local w=$1 url=$2 want=$3 got rc
	shift 3
	while [ ! -e "$stop" ]; do
		rc=0
		got=$(PCURL_TIMEOUT=60 pcurl -f "$@" "$url" 2>/dev/null | sha256sum | cut -c1-64) || rc=$?
		if [ "$rc" = 0 ]; then
			if [ "$got" = "$want" ]; then note "$w" ok; else note "$w" "BAD $url $*: $got"; fi
		else
			note "$w" "err $rc"
			pace
		fi
	done
}
workers=()
skopeo_loop multi multi registry.test/test/multi:v1 &
workers+=($!)
skopeo_loop redirect small redirect.test/test/small:v1 &
workers+=($!)
skopeo_loop basic small basic.test/test/small:v1 --src-creds "$BASIC_USER:$BASIC_PASS" &
workers+=($!)
curl_loop large "https://registry.test/v2/test/large/blobs/$LARGE_LAYER" "${LARGE_LAYER#sha256:}" &
workers+=($!)
curl_loop slow "https://bad.test/v2/test/slow/blobs/$slowblob" "$hex" &
workers+=($!)
curl_loop range "https://redirect.test/v2/test/large/blobs/$LARGE_LAYER" "$range_want" -r 1048576-2097151 &
workers+=($!)

# in_flight: the proxy holds a spool file (a fill under way) now.
in_flight()
{
	local l
	for l in /proc/"$PROXY_PID"/fd/*; do
		case "$(readlink "$l" 2>/dev/null)" in
		"$cdir"/*"(deleted)" | "$cdir"/spool/* | "$cdir"/tmp/*) return 0 ;;
		esac
	done
	return 1
}
purgeable=("$LARGE_LAYER" "$slowblob" registry.test/test/multi:v1 redirect.test/test/small:v1 basic.test/test/small:v1)
mid_fill=0
for round in $(seq 1 20); do
	# The moment: 0.3 to 4 s after the proxy answers.
	delay=$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 0.3 + r / 32767 * 3.7 }')
	during=
	if [ $((round % 4)) = 0 ]; then
		# a moment during a fill: the slow blob's 4 s fill, started by the
		# slow client's next GET since it was purged at the last kill.
		# The check that ended the wait is the last look before the kill
		# (as in the other rounds): a second look could miss a fill that
		# ended in between (another one than the slow blob's).
		drp_wait "round $round: a fill in flight" 60 in_flight
		when="once a fill was in flight"
		mid_fill=$((mid_fill + 1))
		during=" (during a fill)"
	else
		sleep "$delay" # the random moment of the kill, not a wait for an event
		when="after $delay s"
		if in_flight; then
			mid_fill=$((mid_fill + 1))
			during=" (during a fill)"
		fi
	fi
	kill -KILL "$PROXY_PID"
	wait "$PROXY_PID" 2>/dev/null || true
	drp_log "round $round: killed $when$during"
	p=
	if [ $((round % 4)) = 3 ]; then
		p=$slowblob # the next moment is its fill
	elif [ $((RANDOM % 2)) = 0 ]; then
		p=${purgeable[$((RANDOM % ${#purgeable[@]}))]}
	fi
	if [ -n "$p" ]; then
		rc=0
		"$DRP_PROXY" -c "$ini" cache purge "$p" >>"$SCEN/purges" 2>&1 || rc=$?
		[ $rc -le 1 ] || drp_fail "cache purge $p: exit $rc: $(tail -n 3 "$SCEN/purges")"
		drp_log "round $round: purged $p (exit $rc)"
	fi
	[ "$round" = 20 ] && break
	drp_start_proxy "$name"
	drp_unwatch_proxies
done
touch "$stop"
for p in "${workers[@]}"; do wait "$p" || true; done

ops=0
for w in multi redirect basic large slow range; do
	n_ok=$(grep -c '^ok$' "$SCEN/w.$w" || true)
	n_err=$(grep -c '^err' "$SCEN/w.$w" || true)
	drp_log "client $w: $n_ok ok, $n_err failed while the proxy was down or dying"
	ops=$((ops + n_ok))
	expect_eq "client $w: successes with wrong bytes" "" "$(grep '^BAD' "$SCEN/w.$w" || true)"
done
expect_ge "successful client operations in the campaign" 20 "$ops"
drp_log "kills during a fill: $mid_fill of 20"
expect_ge "kills during a fill" 5 "$mid_fill"

# ---- afterwards: nothing bad in the cache, every image exact
"$DRP_PROXY" -c "$ini" cache verify >"$SCEN/verify" 2>&1 || drp_fail "cache verify: $(cat "$SCEN/verify")"
drp_log "$(cat "$SCEN/verify")"
expect_match "cache verify after the campaign" '^verified [0-9]+ object\(s\), .*: 0 bad' "$(cat "$SCEN/verify")"
drp_start_proxy "$name"
expect_eq "leftovers in the cache's tmp/ and spool/ after the restart" "" \
	"$(find "$cdir/tmp" "$cdir/spool" -type f 2>/dev/null)"
for ref in registry.test/test/small registry.test/test/large registry.test/test/multi \
	redirect.test/test/small redirect.test/test/multi; do
	img=${ref##*/}
	pskopeo copy --quiet --retry-times 0 --all "docker://$ref:v1" "dir:$SCEN/final"
	check_pulled "$img" "$SCEN/final"
	rm -rf "$SCEN/final"
done
pskopeo copy --quiet --retry-times 0 --all --src-creds "$BASIC_USER:$BASIC_PASS" \
	docker://basic.test/test/small:v1 "dir:$SCEN/final"
check_pulled small "$SCEN/final"
rm -rf "$SCEN/final"
pcurl -o "$SCEN/final.blob" "https://bad.test/v2/test/good/blobs/$slowblob"
expect_file_digest "the slow upstream's blob" "$SCEN/final.blob" "$slowblob"
"$DRP_PROXY" -c "$ini" cache verify >"$SCEN/verify" 2>&1 || drp_fail "cache verify: $(cat "$SCEN/verify")"
expect_match "cache verify after the final pulls" '^verified [0-9]+ object\(s\), .*: 0 bad' "$(cat "$SCEN/verify")"
