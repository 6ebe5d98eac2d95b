#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Waiters benchmark (issue 15 §2): BENCH_WAITERS (16) curl clients ask for
# the same cold blob (the large layer, BENCH_MB MiB) at the same moment,
# through a proxy with an empty cache, and the same number straight to the
# registry in the same round; the time to the first byte of each client
# (curl's time_starttransfer: connect, CONNECT, handshake, request, first
# byte of the body's answer), the slowest and the median of each round,
# and the medians of those over BENCH_ROUNDS (5) rounds.
#
# Each proxy round starts a fresh proxy on an empty cache. By default it
# is first sent one request that is never cached (GET /v2/), so that it
# has forged the registry's certificate, as a proxy in service has;
# BENCH_WAITERS_FORGED=0 leaves that out, so the first burst of
# handshakes also waits for the forge. Every client's download is checked
# against the digest, and the registry must have seen exactly one GET of
# the blob from the proxy per round (counted in the registry's own log).
#
# usage: sudo bench/waiters.sh BUILD_DIR
# env:   BENCH_ROUNDS [5]  BENCH_WAITERS [16]  BENCH_MB [32]
#        BENCH_WAITERS_FORGED [1]  and those of bench/lib.sh
#        BENCH_WAITERS_STRACE=FILE  the proxy's socket and spool calls
#                         during each proxy burst, strace -f -tt into
#                         FILE.ROUND (timings disturbed; not for figures)
set -euo pipefail
BENCH_MB=${BENCH_MB:-32}
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

ROUNDS=${BENCH_ROUNDS:-5}
N=${BENCH_WAITERS:-16}
FORGED=${BENCH_WAITERS_FORGED:-1}

bench_init "${1:-}"
read -r -a TLS_OPTS <<<"$(bench_curl_tls)"
REG_LOG=$(reg_log open)

# burst SIDE OUTDIR: N curl clients at once (each waits on the same fifo
# until its only writer, this shell, closes it), each writing its time_starttransfer to
# OUTDIR/N.t and its body to OUTDIR/N.bin.
burst()
{
	local side=$1 out=$2 i pids=() go=$2/go
	rm -rf "$out"
	mkdir -p "$out"
	mkfifo "$go"
	exec 9<>"$go"
	for ((i = 0; i < N; i++)); do
		(
			exec 9>&- 3<"$go"
			: >"$out/$i.ready"
			read -r _ <&3 || true
			if [ "$side" = proxy ]; then
				exec curl -sS --fail --http1.1 --max-time 120 "${TLS_OPTS[@]}" \
					--proxy "$PROXY_URL" --noproxy '' \
					--cacert "$PROXY_CA" --capath "$WORK/empty-certs" \
					-w '%{time_starttransfer} %{time_connect} %{time_appconnect}\n' -o "$out/$i.bin" \
					"https://registry.test$BLOB_PATH" >"$out/$i.t"
			else
				exec curl -sS --fail --http1.1 --max-time 120 "${TLS_OPTS[@]}" \
					--resolve "registry.test:443:${DRP_IP[registry.test]}" \
					--cacert "$TEST_CA" --capath "$WORK/empty-certs" \
					-w '%{time_starttransfer} %{time_connect} %{time_appconnect}\n' -o "$out/$i.bin" \
					"https://registry.test$BLOB_PATH" >"$out/$i.t"
			fi
		) &
		pids+=($!)
	done
	# Every reader has the fifo open: closing the only writer gives them
	# all EOF at once.
	local t
	for ((t = 0; t < 1000; t++)); do
		[ "$(find "$out" -name '*.ready' | wc -l)" -lt "$N" ] || break
		sleep 0.01
	done
	exec 9>&-
	local fail=0
	for i in "${pids[@]}"; do wait "$i" || fail=1; done
	[ $fail = 0 ] || drp_fail "a $side client failed"
	for ((i = 0; i < N; i++)); do
		[ "sha256:$(sha256sum <"$out/$i.bin" | cut -c1-64)" = "$LARGE_LAYER" ] ||
			drp_fail "$side client $i: wrong digest"
	done
	cat "$out"/*.t | sort -g >"$out/all"
	rm -f "$out"/*.bin
}

fresh_proxy()
{
	if [ -n "${PROXY_PID:-}" ]; then
		bench_stop_proxy
		rm -rf "$PROXY_DIR/cache"
	fi
	bench_proxy "waiters-$1"
	if [ "$FORGED" = 1 ]; then
		curl -sS --max-time 30 --proxy "$PROXY_URL" --noproxy '' --cacert "$PROXY_CA" \
			--capath "$WORK/empty-certs" -o /dev/null "https://registry.test/v2/" ||
			drp_fail "the fresh proxy does not answer"
	else
		rm -rf "$PROXY_DIR/ca/certs" # a CA kept from an earlier round has none anyway
	fi
}

declare -A S=()
# record SIDE DIR: slowest and median of the round.
record()
{
	local side=$1 dir=$2 max med
	max=$(tail -n 1 "$dir/all" | cut -d' ' -f1)
	# shellcheck disable=SC2046
	med=$(median $(cut -d' ' -f1 "$dir/all"))
	S[${side}_max]="${S[${side}_max]:-} $max"
	S[${side}_med]="${S[${side}_med]:-} $med"
	S[${side}_last]="$med/$max"
}

proxy_round()
{
	local mark n
	fresh_proxy "$1"
	mark=$(log_mark "$REG_LOG")
	local tracer=
	if [ -n "${BENCH_WAITERS_STRACE:-}" ]; then
		strace -f -tt -qq -e trace=accept4,read,recvfrom,sendmsg,sendto,write,writev,epoll_wait,pwrite64 \
			-o "$BENCH_WAITERS_STRACE.$1" -p "$PROXY_PID" &
		tracer=$!
		sleep 1 # strace attaches asynchronously
	fi
	burst proxy "$WORK/wp"
	if [ -n "$tracer" ]; then
		kill -INT "$tracer" || true
		wait "$tracer" || true
	fi
	# the registry logs a request once it has answered it
	wait_log "$REG_LOG" "$mark" "$(req_pat GET "$BLOB_PATH")" 1 10
	settle_upstream registry.test "$REG_LOG"
	n=$(count_since "$REG_LOG" "$mark" "$(req_pat GET "$BLOB_PATH")")
	[ "$n" = 1 ] || drp_fail "the registry saw $n GETs of the blob through the proxy (1 expected)"
	record proxy "$WORK/wp"
}
direct_round() { burst direct "$WORK/wd" && record direct "$WORK/wd"; }

drp_log "warm-up"
direct_round
proxy_round 0
S=()
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg), $(bench_idle 2)"
for ((r = 1; r <= ROUNDS; r++)); do
	if [ $((r % 2)) = 1 ]; then
		direct_round
		proxy_round "$r"
	else
		proxy_round "$r"
		direct_round
	fi
	drp_log "round $r: first byte median/slowest: direct ${S[direct_last]} s, proxy ${S[proxy_last]} s"
	drp_log "    every client, first byte (TCP connect, TLS done): direct $(awk '{ printf "%s(%s,%s) ", $1, $2, $3 }' "$WORK/wd/all")"
	drp_log "    proxy $(awk '{ printf "%s(%s,%s) ", $1, $2, $3 }' "$WORK/wp/all")"
done

echo
echo "== $N clients ask for the same cold blob ($BENCH_MB MiB) at once, $ROUNDS rounds, $(nproc) CPUs, load before: $LOAD_BEFORE"
echo "proxy: $DRP_PROXY, $BENCH_WORKERS workers, empty cache each round, certificate $([ "$FORGED" = 1 ] && echo "forged before the burst" || echo "forged during the burst")"
echo
printf '%-34s %8s %8s\n' "first byte (s), median of rounds" direct proxy
# shellcheck disable=SC2086
printf '%-34s %8s %8s\n' "median client" "$(median ${S[direct_med]})" "$(median ${S[proxy_med]})"
# shellcheck disable=SC2086
printf '%-34s %8s %8s\n' "slowest client" "$(median ${S[direct_max]})" "$(median ${S[proxy_max]})"
echo "    rounds slowest direct:${S[direct_max]}"
echo "    rounds slowest proxy: ${S[proxy_max]}"
echo "    rounds median direct: ${S[direct_med]}"
echo "    rounds median proxy:  ${S[proxy_med]}"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg), $(bench_idle 2)"
bench_stop_proxy
