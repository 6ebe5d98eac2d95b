#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Hot-blob serving benchmark: a cached BENCH_MB MiB blob (incompressible,
# deterministic) served through the proxy's TLS interception, and the same
# blob served by nginx as a TLS reverse cache in front of the same registry,
# to 1 and to N concurrent curl clients, side by side in one run.
#
# Clients: curl -o /dev/null, TLS 1.3 with the same suites for both sides
# (BENCH_TLS13_CIPHERS), HTTP/1.1, one connection per download. Through the
# proxy: --proxy (CONNECT, intercepted), trusting only the proxy's CA;
# nginx: fetched directly, trusting only the test CA.
#
# Per side and client count it prints the aggregate MB/s (MB = 10^6 bytes;
# median of the rounds and their range) and the server's CPU seconds per GB
# served (GB = 10^9 bytes): the scheduler's run time of the whole proxy
# process (every thread), and of every nginx process (master, workers,
# cache manager), over all rounds, divided by the bytes the clients
# received.
# "srv cores" is that CPU over the wall time; "cli s/GB" is the curl
# clients' CPU per GB (they share the same cores on a small machine, which
# is why CPU per GB is the figure to compare, not MB/s).
#
# usage: sudo bench/serve.sh BUILD_DIR
# env:   BENCH_ROUNDS [3]  BENCH_CLIENTS [16]  and those of bench/lib.sh
#        (BENCH_MB [100], BENCH_WORKERS [2], BENCH_TLS13_CIPHERS
#        [TLS_AES_128_GCM_SHA256], BENCH_IT_LOCK, BENCH_KEEP)
#        BENCH_PERF=FILE  after the measured rounds, record the proxy with
#                         perf during BENCH_ROUNDS more N-client rounds
#                         (not in the table) into FILE; perf's options are
#                         BENCH_PERF_ARGS [--call-graph dwarf,8192 -F 499]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

ROUNDS=${BENCH_ROUNDS:-3}
CLIENTS=${BENCH_CLIENTS:-16}
# A bound for one round: generous even on a loaded machine.
ROUND_TIMEOUT=${BENCH_ROUND_TIMEOUT:-300}

bench_init "${1:-}"
HOST_URL=https://registry.test$BLOB_PATH
NGINX_URL=https://cache.test$BLOB_PATH
read -r -a TLS_OPTS <<<"$(bench_curl_tls)"

# ---------------------------------------------------------------- servers

bench_proxy serve

NGX=$WORK/nginx-cache
mkdir -p "$NGX/tmp" "$NGX/cache"
sed -e "s|@WORKERS@|$BENCH_WORKERS|g" -e "s|@DIR@|$NGX|g" -e "s|@PKI@|$WORK/pki|g" \
	-e "s|@IP@|${DRP_IP[cache.test]}|g" -e "s|@UPSTREAM@|${DRP_IP[registry.test]}|g" \
	"$BENCH_DIR/nginx-cache.conf.in" >"$NGX/nginx.conf"
nginx -t -q -e "$NGX/error.log" -p "$NGX" -c "$NGX/nginx.conf" ||
	drp_fail "nginx rejects $NGX/nginx.conf"
drp_bg nginx-cache nginx -e "$NGX/error.log" -p "$NGX" -c "$NGX/nginx.conf"
NGINX_PID=$DRP_LAST_PID
drp_wait_started nginx-cache "$NGINX_PID" 20 drp_port_open "${DRP_IP[cache.test]}" 443

# The clients of each side. Both are given --max-time so that no round can
# hang; --fail makes an HTTP error a failed download.
proxy_curl()
{
	curl -sS --fail --http1.1 --max-time "$ROUND_TIMEOUT" "${TLS_OPTS[@]}" \
		--proxy "$PROXY_URL" --noproxy '' \
		--cacert "$PROXY_CA" --capath "$WORK/empty-certs" "$@" "$HOST_URL"
}
nginx_curl()
{
	curl -sS --fail --http1.1 --max-time "$ROUND_TIMEOUT" "${TLS_OPTS[@]}" \
		--resolve "cache.test:443:${DRP_IP[cache.test]}" \
		--cacert "$TEST_CA" --capath "$WORK/empty-certs" "$@" "$NGINX_URL"
}

# ---------------------------------------------------------------- warm-up

# warm SIDE: fetch until the side answers X-Cache: HIT (bounded), then
# check that the bytes of one HIT download are the blob.
warm()
{
	local side=$1 i x
	for i in $(seq 1 20); do
		x=$("${side}_curl" -o "$WORK/warm-$side.bin" -D - | hdr X-Cache)
		drp_log "$side warm-up $i: X-Cache: $x"
		[ "$x" = HIT ] && break
		sleep 0.5
	done
	expect_eq "$side X-Cache after warm-up" HIT "$x"
	expect_file_digest "$side HIT download" "$WORK/warm-$side.bin" "$LARGE_LAYER"
	rm -f "$WORK/warm-$side.bin"
}
warm proxy
warm nginx

# Negotiated TLS: with the benchmark's client options, and with curl's
# defaults (what the server itself prefers).
CIPHER_PROXY=$(bench_cipher --proxy "$PROXY_URL" --noproxy '' "${TLS_OPTS[@]}" \
	--cacert "$PROXY_CA" --capath "$WORK/empty-certs" -r 0-0 "$HOST_URL")
CIPHER_NGINX=$(bench_cipher --resolve "cache.test:443:${DRP_IP[cache.test]}" "${TLS_OPTS[@]}" \
	--cacert "$TEST_CA" --capath "$WORK/empty-certs" -r 0-0 "$NGINX_URL")
DEFCIPHER_PROXY=$(bench_cipher --proxy "$PROXY_URL" --noproxy '' \
	--cacert "$PROXY_CA" --capath "$WORK/empty-certs" -r 0-0 "$HOST_URL")
DEFCIPHER_NGINX=$(bench_cipher --resolve "cache.test:443:${DRP_IP[cache.test]}" \
	--cacert "$TEST_CA" --capath "$WORK/empty-certs" -r 0-0 "$NGINX_URL")
if [ -z "$CIPHER_PROXY" ] || [ -z "$CIPHER_NGINX" ]; then
	drp_fail "could not read the negotiated ciphers"
fi

# GnuTLS's own AES-128-GCM speed on one core, for reference (the first
# line of the benchmark; the rest is cut off by SIGPIPE).
GNUTLS_AES=$(timeout 120 gnutls-cli --benchmark-ciphers 2>/dev/null | grep -m1 'AES-128-GCM' |
	sed 's/^ *//') || true

# ---------------------------------------------------------------- rounds

# Results per "side clients": lists of per-round MB/s, and totals.
declare -A R_MBS=() R_BYTES=() R_WALL=() R_NS=() R_CTICKS=() R_UT=() R_ST=()

# round SIDE N [TAG]: N concurrent downloads of the blob; checks that every
# one got all the bytes; adds to the totals of "SIDE N" (of "SIDE N TAG").
round()
{
	local side=$1 n=$2 k=${1}_$2${3:+_$3} pids t0 t1 c0 c1 k0 k1 u0 u1 s0 s1 i p bytes=0 bad=0 code size
	local out=$WORK/round.out cpids=()
	pids=$(bench_server_pids "$side")
	: >"$out"
	# shellcheck disable=SC2086
	c0=$(bench_cpu_ns $pids)
	# shellcheck disable=SC2086
	read -r u0 s0 <<<"$(bench_ticks $pids)"
	k0=$(bench_self_child_ticks)
	t0=$(bench_now)
	for ((i = 0; i < n; i++)); do
		"${side}_curl" -o /dev/null -w '%{http_code} %{size_download}\n' >>"$out" &
		cpids+=($!)
	done
	# Only the clients: a bare wait would wait for the servers too. A
	# failed client shows in $out.
	for p in "${cpids[@]}"; do wait "$p" || true; done
	t1=$(bench_now)
	k1=$(bench_self_child_ticks)
	# shellcheck disable=SC2086
	c1=$(bench_cpu_ns $pids)
	# shellcheck disable=SC2086
	read -r u1 s1 <<<"$(bench_ticks $pids)"
	while read -r code size; do
		if [ "$code" = 200 ] && [ "$size" = "$BLOB_SIZE" ]; then
			bytes=$((bytes + size))
		else
			bad=$((bad + 1))
		fi
	done <"$out"
	if [ "$(wc -l <"$out")" != "$n" ] || [ $bad != 0 ]; then
		drp_fail "$side, $n clients: $bad of $n downloads failed or were short: $(sort "$out" | uniq -c | tr '\n' ';')"
	fi
	local wall mbs
	wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')
	mbs=$(awk -v b="$bytes" -v w="$wall" 'BEGIN { printf "%.1f", b / w / 1e6 }')
	drp_log "$side, $n client(s): $bytes bytes in $wall s = $mbs MB/s, server $(((c1 - c0) / 1000000)) ms CPU, clients $(((k1 - k0) * 1000 / CLK_TCK)) ms CPU"
	R_MBS[$k]="${R_MBS[$k]:-} $mbs"
	R_BYTES[$k]=$((${R_BYTES[$k]:-0} + bytes))
	R_WALL[$k]=$(awk -v a="${R_WALL[$k]:-0}" -v w="$wall" 'BEGIN { printf "%.6f", a + w }')
	R_NS[$k]=$((${R_NS[$k]:-0} + c1 - c0))
	R_CTICKS[$k]=$((${R_CTICKS[$k]:-0} + k1 - k0))
	R_UT[$k]=$((${R_UT[$k]:-0} + u1 - u0))
	R_ST[$k]=$((${R_ST[$k]:-0} + s1 - s0))
}

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg), $(bench_idle 2)"
# Interleaved, so that a change in the machine's background load hits both
# sides alike.
for n in 1 "$CLIENTS"; do
	for ((r = 1; r <= ROUNDS; r++)); do
		round proxy "$n"
		round nginx "$n"
	done
done
if [ -n "${BENCH_PERF:-}" ]; then
	bench_perf_start "$PROXY_PID" "$BENCH_PERF"
	for ((r = 1; r <= ROUNDS; r++)); do round proxy "$CLIENTS" perf; done
	bench_perf_stop
	drp_log "perf data in $BENCH_PERF (not counted in the table)"
fi

# The proxy saw only hits (its own counters) and is still healthy.
METRICS=$(curl -sf --max-time 5 "$PROXY_URL/metrics" || true)

# ---------------------------------------------------------------- report

row()
{
	local side=$1 n=$2 k=${1}_$2 label=$3
	# shellcheck disable=SC2086
	awk -v label="$label" -v n="$n" -v rounds="$ROUNDS" -v med="$(median ${R_MBS[$k]})" \
		-v list="${R_MBS[$k]# }" -v bytes="${R_BYTES[$k]}" -v wall="${R_WALL[$k]}" \
		-v ns="${R_NS[$k]}" -v cticks="${R_CTICKS[$k]}" -v hz="$CLK_TCK" \
		-v ut="${R_UT[$k]}" -v st="${R_ST[$k]}" 'BEGIN {
		split(list, v, " "); lo = v[1]; hi = v[1]
		for (i in v) { if (v[i] + 0 < lo + 0) lo = v[i]; if (v[i] + 0 > hi + 0) hi = v[i] }
		gb = bytes / 1e9
		printf "%-24s %7d %6d %9.1f %15s %10.3f %9.2f %10.3f %8s\n", label, n, rounds, med,
			lo "-" hi, ns / 1e9 / gb, ns / 1e9 / wall, cticks / hz / gb,
			(ut + st > 0 ? sprintf("%.0f%%", 100 * st / (ut + st)) : "-") }'
}

echo
echo "== hot blob serving: $BLOB_SIZE-byte blob ($BENCH_MB MiB), $(nproc) CPUs, load before: $LOAD_BEFORE"
echo "proxy: $DRP_PROXY ($("$DRP_PROXY" --version 2>/dev/null | head -n 1)), $BENCH_WORKERS workers"
echo "nginx: $(nginx -v 2>&1 | sed 's/.*: //'), worker_processes $BENCH_WORKERS, proxy_cache"
echo "TLS with the benchmark's client options (${TLS_OPTS[*]}):"
echo "  proxy: $CIPHER_PROXY    nginx: $CIPHER_NGINX"
echo "TLS with curl's default client options:"
echo "  proxy: ${DEFCIPHER_PROXY:-?}    nginx: ${DEFCIPHER_NGINX:-?}"
echo "gnutls-cli --benchmark-ciphers (one core): ${GNUTLS_AES:-n/a}"
echo
printf '%-24s %7s %6s %9s %15s %10s %9s %10s %8s\n' server clients rounds "MB/s" "MB/s range" \
	"srv s/GB" "srv cores" "cli s/GB" "srv sys"
for n in 1 "$CLIENTS"; do
	row proxy "$n" "docker-registry-proxy"
	row nginx "$n" "nginx proxy_cache"
done
echo
for n in 1 "$CLIENTS"; do
	awk -v n="$n" -v pt="${R_NS[proxy_$n]}" -v pb="${R_BYTES[proxy_$n]}" \
		-v nt="${R_NS[nginx_$n]}" -v nb="${R_BYTES[nginx_$n]}" 'BEGIN {
		p = pt / pb; q = nt / nb
		if (q == 0) { printf "%d client(s): nginx CPU too small to measure\n", n; exit }
		printf "%d client(s): proxy CPU/GB is %.0f%% of nginx'"'"'s: %s\n", n, 100 * p / q,
			p < q ? "the proxy costs less CPU per GB" : "nginx costs less CPU per GB" }'
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg), $(bench_idle 2)"
if [ -n "$METRICS" ]; then
	echo "proxy /metrics (cache lines):"
	printf '%s\n' "$METRICS" | grep -Ei 'cache|hit|miss' | grep -v '^#' | sed 's/^/  /' | sed -n 1,12p
fi
bench_stop_proxy
