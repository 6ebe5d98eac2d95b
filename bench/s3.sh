#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Hot serving with the shared S3 tier ([cache] backend = s3) against the
# single-node fs cache: a BENCH_MB MiB blob (incompressible, deterministic)
# fetched through the proxy's TLS interception by 1 and by N concurrent
# curl clients, from three places, side by side in one run:
#
#   fs      a proxy with the plain fs cache, the blob in it (a hit);
#   local   a proxy with backend = s3, the blob in its local tier
#           (local_dir): a hit there, the bucket not asked;
#   s3      a proxy with backend = s3 and an empty local tier, the blob in
#           the bucket: every round a fresh proxy (its local tier empty),
#           so every round is a local miss served from the bucket: one
#           GET to radosgw streamed to every client, hashed on the way,
#           the last byte held until the digest matches, and kept in the
#           local tier (what a proxy of a fleet does for a blob another
#           proxy fetched). The registry is asked one HEAD (the
#           repository's confirmation), no GET.
#
# The bucket is a one-node Ceph cluster (radosgw with memstore) from the
# integration harness (tests/integration/ceph_lib.sh), on its own loopback
# address (BENCH_CEPH_IP, default 127.0.0.43).
#
# Columns as in serve.sh: MB/s (10^6 bytes; median of the rounds, range),
# the proxy's CPU seconds per GB served (GB = 10^9), and for s3 also the
# store's (radosgw + OSD) CPU per GB served to the clients.
#
# usage: sudo bench/s3.sh BUILD_DIR
# env:   BENCH_ROUNDS [3]  BENCH_CLIENTS [16]  and those of bench/lib.sh
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=../tests/integration/ceph_lib.sh
. "$DRP_IT_DIR/ceph_lib.sh"
CEPH_IP=${BENCH_CEPH_IP:-127.0.0.43}
S3_HTTP=http://$CEPH_IP:7480
DRP_IP["s3.test"]=$CEPH_IP

ROUNDS=${BENCH_ROUNDS:-3}
CLIENTS=${BENCH_CLIENTS:-16}
ROUND_TIMEOUT=${BENCH_ROUND_TIMEOUT:-300}

bench_init "${1:-}"
drp_require_tools $DRP_CEPH_TOOLS
HOST_URL=https://registry.test$BLOB_PATH
read -r -a TLS_OPTS <<<"$(bench_curl_tls)"
# bench_init took no scenario dir; ceph_lib wants one for its files.
SCEN=$WORK/s3bench
mkdir -p "$SCEN"
ceph_start "$WORK/ceph"
BUCKET=drp-bench
s3_mkbucket $BUCKET

# s3_proxy NAME: a proxy with backend = s3, its local tier in
# $WORK/NAME/local (empty at start), started (PROXY_*).
s3_proxy()
{
	local name=$1 d=$WORK/$1
	rm -rf "$d"
	mkdir -p "$d"
	cat >"$d/proxy.ini" <<-EOF
		; benchmark proxy "$name"
		[proxy]
		listen = 127.0.0.1:$(drp_free_port)
		workers = $BENCH_WORKERS
		registries = registry.test
		allow = 127.0.0.1/32
		ca_dir = $d/ca
		upstream_ca_file = $TEST_CA
		access_log = $d/access.log
		error_log = $d/proxy.log
		log_level = ${BENCH_LOG_LEVEL:-notice}
		[resolve]
		registry.test = ${DRP_IP[registry.test]}:443
		[cache]
		backend = s3
		local_dir = $d/local
		s3_endpoint = $S3_HTTP
		s3_bucket = $BUCKET
		s3_access_key = $S3_ACCESS_KEY
		s3_secret_key_file = $CEPH_DIR/drp.secret
	EOF
	drp_start_proxy "$name"
}

pcurl_bench()
{
	curl -sS --fail --http1.1 --max-time "$ROUND_TIMEOUT" "${TLS_OPTS[@]}" \
		--proxy "$PROXY_URL" --noproxy '' \
		--cacert "$PROXY_CA" --capath "$WORK/empty-certs" "$@" "$HOST_URL"
}

# warm: fetch through the current proxy until X-Cache: HIT, check bytes.
warm()
{
	local i x
	for i in $(seq 1 20); do
		x=$(pcurl_bench -o "$WORK/warm.bin" -D - | hdr X-Cache)
		[ "$x" = HIT ] && break
		sleep 0.5
	done
	expect_eq "$PROXY_NAME X-Cache after warm-up" HIT "$x"
	expect_file_digest "$PROXY_NAME HIT download" "$WORK/warm.bin" "$LARGE_LAYER"
	rm -f "$WORK/warm.bin"
}

# use_proxy URL CA PID NAME DIR: the proxy the next round (and
# bench_stop_proxy) works on; the proxies of the three sides run side by
# side, each started once per client count.
use_proxy() { PROXY_URL=$1 PROXY_CA=$2 PROXY_PID=$3 PROXY_NAME=$4 PROXY_DIR=$5; }

declare -A R_MBS=() R_BYTES=() R_WALL=() R_NS=() R_STORE_NS=()

store_pids() { echo "$CEPH_RGW_PID $CEPH_OSD_PID"; }

# round SIDE N: N concurrent downloads through the current proxy; every
# one must be whole; adds to the totals of "SIDE N".
round()
{
	local side=$1 n=$2 k=${1}_$2 t0 t1 c0 c1 s0 s1 i p bytes=0 bad=0 code size
	local out=$WORK/round.out cpids=() sp
	: >"$out"
	sp=$(store_pids)
	c0=$(bench_proc_cpu_ns "$PROXY_PID")
	# shellcheck disable=SC2086
	s0=$(bench_cpu_ns $sp)
	t0=$(bench_now)
	for ((i = 0; i < n; i++)); do
		pcurl_bench -o /dev/null -w '%{http_code} %{size_download}\n' >>"$out" &
		cpids+=($!)
	done
	for p in "${cpids[@]}"; do wait "$p" || true; done
	t1=$(bench_now)
	c1=$(bench_proc_cpu_ns "$PROXY_PID")
	# shellcheck disable=SC2086
	s1=$(bench_cpu_ns $sp)
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
	drp_log "$side, $n client(s): $bytes bytes in $wall s = $mbs MB/s, proxy $(((c1 - c0) / 1000000)) ms CPU, store $(((s1 - s0) / 1000000)) ms CPU"
	R_MBS[$k]="${R_MBS[$k]:-} $mbs"
	R_BYTES[$k]=$((${R_BYTES[$k]:-0} + bytes))
	R_WALL[$k]=$(awk -v a="${R_WALL[$k]:-0}" -v w="$wall" 'BEGIN { printf "%.6f", a + w }')
	R_NS[$k]=$((${R_NS[$k]:-0} + c1 - c0))
	R_STORE_NS[$k]=$((${R_STORE_NS[$k]:-0} + s1 - s0))
}

# The blob into the bucket: a first proxy fetches it from the registry
# (and uploads it); its completion is in its log.
s3_proxy s3-seed
warm
s3has() { [ "$(s3curl -o /dev/null -w '%{http_code}' -I "$S3_HTTP/$BUCKET/blobs/sha256/${LARGE_LAYER#sha256:}")" = 200 ]; }
drp_wait "the blob in the bucket" 60 s3has
bench_stop_proxy

reg=$(reg_log open)
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg), $(bench_idle 2)"
for n in 1 "$CLIENTS"; do
	for ((r = 1; r <= ROUNDS; r++)); do
		# fs: the single-node cache (a fresh proxy per client count,
		# warmed once).
		if [ "$r" = 1 ]; then
			bench_proxy "fs-$n"
			warm
			FS_P=("$PROXY_URL" "$PROXY_CA" "$PROXY_PID" "$PROXY_NAME" "$PROXY_DIR")
		fi
		use_proxy "${FS_P[@]}"
		round fs "$n"
		[ "$r" != "$ROUNDS" ] || bench_stop_proxy

		# local: the s3 proxy's local tier, warmed once.
		if [ "$r" = 1 ]; then
			s3_proxy "local-$n"
			m=$(log_mark "$reg")
			warm
			expect_eq "the local tier's warm-up read the bucket, not the registry" 0 \
				"$(count_since "$reg" "$m" "$(req_pat GET "$BLOB_PATH")")"
			LOCAL_P=("$PROXY_URL" "$PROXY_CA" "$PROXY_PID" "$PROXY_NAME" "$PROXY_DIR")
		fi
		use_proxy "${LOCAL_P[@]}"
		round local "$n"
		[ "$r" != "$ROUNDS" ] || bench_stop_proxy

		# s3: a fresh proxy, its local tier empty: from the bucket.
		s3_proxy "s3-$n-$r"
		am=$(amark) m=$(log_mark "$reg")
		round s3 "$n"
		expect_eq "s3 round: registry GETs of the blob" 0 \
			"$(count_since "$reg" "$m" "$(req_pat GET "$BLOB_PATH")")"
		# Every request a hit from the bucket or a waiter on that
		# fill (COALESCED), none a MISS (an upstream fetch).
		res=$(anext_n "$n" "$am" registry.test:443 GET "$BLOB_PATH" | awk '{ print $11 }' | sort | uniq -c | tr '\n' ' ')
		expect_match "s3 round: results of the $n requests ($res)" '^ *[0-9]+ (COALESCED|HIT) *( +[0-9]+ (COALESCED|HIT) *)?$' "$res"
		bench_stop_proxy
	done
done

row()
{
	local side=$1 n=$2 k=${1}_$2 label=$3
	# shellcheck disable=SC2086
	awk -v label="$label" -v n="$n" -v rounds="$ROUNDS" -v med="$(median ${R_MBS[$k]})" \
		-v list="${R_MBS[$k]# }" -v bytes="${R_BYTES[$k]}" -v wall="${R_WALL[$k]}" \
		-v ns="${R_NS[$k]}" -v sns="${R_STORE_NS[$k]}" -v side="$side" 'BEGIN {
		split(list, v, " "); lo = v[1]; hi = v[1]
		for (i in v) { if (v[i] + 0 < lo + 0) lo = v[i]; if (v[i] + 0 > hi + 0) hi = v[i] }
		gb = bytes / 1e9
		store = side == "s3" ? sprintf("%10.3f", sns / 1e9 / gb) : sprintf("%10s", "-")
		printf "%-34s %7d %6d %9.1f %15s %10.3f %9.2f %s\n", label, n, rounds, med,
			lo "-" hi, ns / 1e9 / gb, ns / 1e9 / wall, store }'
}

echo
echo "== hot serving, S3 tier vs local tier vs fs cache: $BLOB_SIZE-byte blob ($BENCH_MB MiB), $(nproc) CPUs, load before: $LOAD_BEFORE"
echo "proxy: $DRP_PROXY ($("$DRP_PROXY" --version 2>/dev/null | head -n 1)), $BENCH_WORKERS workers"
echo "store: radosgw $(radosgw --version 2>/dev/null | awk '{print $3}') (beast, memstore OSD), plain HTTP on loopback"
echo "client TLS: ${TLS_OPTS[*]}"
echo
printf '%-34s %7s %6s %9s %15s %10s %9s %10s\n' served-from clients rounds "MB/s" "MB/s range" \
	"srv s/GB" "srv cores" "store s/GB"
for n in 1 "$CLIENTS"; do
	row fs "$n" "fs cache (single node), hit"
	row local "$n" "backend=s3, local tier hit"
	row s3 "$n" "backend=s3, S3 tier (local miss)"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg), $(bench_idle 2)"
