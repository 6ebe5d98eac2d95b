#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Cold-pull benchmark: the time skopeo takes to pull the test images
# large (one BENCH_MB MiB layer) and small (two 512 KiB layers) to dir:
# through the proxy with an empty cache, against a direct pull from the
# same registry (trusting the test CA), over BENCH_ROUNDS rounds, and the
# proxy's overhead of the medians. A second pair of rows does the same for
# a single curl GET of the large blob, which leaves skopeo's own work out.
#
# Every proxy round starts a new proxy on a fresh cache directory (outside
# the timing) and sends it one request that is never cached (GET /v2/),
# so the proxy has forged the registry's certificate before the pull, as
# a proxy in service has. Direct and proxy rounds alternate, each round's
# order swapped, so that the machine's background load falls on both.
# Every pull is checked (manifest and blob digests) after its timing.
#
# usage: sudo bench/cold.sh BUILD_DIR
# env:   BENCH_ROUNDS [5]  and those of bench/lib.sh (BENCH_MB [100],
#        BENCH_WORKERS [2], BENCH_TLS13_CIPHERS (curl rows only),
#        BENCH_IT_LOCK, BENCH_KEEP)
#        BENCH_UPSTREAM_RATE=RATE  the registry's replies (127.0.0.41:443
#                         -> anyone) go through an HTB class of this tc rate
#                         (e.g. 1gbit), a stand-in for a real upstream's
#                         link; removed at exit. Unset: loopback speed.
#        BENCH_PERF=FILE  after the measured rounds, one more cold curl GET
#                         through a fresh proxy (not in the table), recorded
#                         with perf into FILE (BENCH_PERF_ARGS as in lib.sh)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

ROUNDS=${BENCH_ROUNDS:-5}
PULL_TIMEOUT=${BENCH_PULL_TIMEOUT:-600}

bench_init "${1:-}"

# shape_upstream RATE: limit what the registry sends (source
# registry.test:443), on lo, for direct, proxy and nginx pulls alike; the
# proxy's and nginx's replies to their clients are not limited (unclassified
# traffic bypasses HTB's classes).
shape_upstream()
{
	drp_require_tools tc
	tc qdisc show dev lo | grep -q '^qdisc noqueue' ||
		drp_fail "lo already has a qdisc; not touching it: $(tc qdisc show dev lo)"
	drp_at_exit "tc qdisc del dev lo root 2>/dev/null"
	if ! { tc qdisc add dev lo root handle 1: htb &&
		tc class add dev lo parent 1: classid 1:1 htb rate "$1" ceil "$1" \
			burst 256k cburst 256k &&
		tc filter add dev lo parent 1: protocol ip prio 1 u32 \
			match ip src "${DRP_IP[registry.test]}/32" match ip sport 443 0xffff flowid 1:1; }; then
		drp_fail "cannot shape lo with tc (htb, u32) to $1"
	fi
	drp_log "the registry's replies are limited to $1 (tc htb on lo)"
}
if [ -n "${BENCH_UPSTREAM_RATE:-}" ]; then shape_upstream "$BENCH_UPSTREAM_RATE"; fi
read -r -a TLS_OPTS <<<"$(bench_curl_tls)"
IMAGES="large small"

# pull_images DEST RUNNER: skopeo copy of every image to DEST/NAME via
# RUNNER (direct or via_proxy, from tests/integration/lib.sh).
pull_images()
{
	local dest=$1 run=$2 host=${3:-registry.test} img
	mkdir -p "$dest"
	for img in $IMAGES; do
		"$run" timeout "$PULL_TIMEOUT" skopeo copy --quiet --retry-times 0 \
			"docker://$host/test/$img:v1" "dir:$dest/$img" ||
			drp_fail "pull of test/$img ($run) failed"
	done
}

# same_digest FILE sha256:HEX
same_digest() { [ "sha256:$(sha256sum <"$1" | cut -c1-64)" = "$2" ]; }

# check_pull DEST: every pulled manifest and blob has its digest; then
# DEST is removed.
check_pull()
{
	local dest=$1 img digest blobs b
	for img in $IMAGES; do
		case $img in
		large) digest=$LARGE_DIGEST blobs=$LARGE_BLOBS ;;
		small) digest=$SMALL_DIGEST blobs=$SMALL_BLOBS ;;
		esac
		same_digest "$dest/$img/manifest.json" "$digest" ||
			drp_fail "$dest/$img: wrong manifest"
		for b in $blobs; do
			same_digest "$dest/$img/${b#sha256:}" "$b" || drp_fail "$dest/$img: blob $b wrong"
		done
	done
	rm -rf "$dest"
}

blob_direct()
{
	timeout "$PULL_TIMEOUT" curl -sS --fail --http1.1 "${TLS_OPTS[@]}" \
		--resolve "registry.test:443:${DRP_IP[registry.test]}" \
		--cacert "$TEST_CA" --capath "$WORK/empty-certs" \
		-o "$WORK/blob.bin" "https://registry.test$BLOB_PATH"
}
blob_proxy()
{
	timeout "$PULL_TIMEOUT" curl -sS --fail --http1.1 "${TLS_OPTS[@]}" \
		--proxy "$PROXY_URL" --noproxy '' \
		--cacert "$PROXY_CA" --capath "$WORK/empty-certs" \
		-o "$WORK/blob.bin" "https://registry.test$BLOB_PATH"
}

blob_nginx()
{
	timeout "$PULL_TIMEOUT" curl -sS --fail --http1.1 "${TLS_OPTS[@]}" \
		--resolve "cache.test:443:${DRP_IP[cache.test]}" \
		--cacert "$TEST_CA" --capath "$WORK/empty-certs" \
		-o "$WORK/blob.bin" "https://cache.test$BLOB_PATH"
}

# nginx as a TLS reverse cache of the registry (bench/nginx-cache.conf.in,
# as in serve.sh), the peer of the proxy: fresh_nginx starts one on an
# empty cache (stopping the previous one).
NGX=$WORK/nginx-cache
mkdir -p "$NGX/tmp"
sed -e "s|@WORKERS@|$BENCH_WORKERS|g" -e "s|@DIR@|$NGX|g" -e "s|@PKI@|$WORK/pki|g" \
	-e "s|@IP@|${DRP_IP[cache.test]}|g" -e "s|@UPSTREAM@|${DRP_IP[registry.test]}|g" \
	"$BENCH_DIR/nginx-cache.conf.in" >"$NGX/nginx.conf"
nginx -t -q -e "$NGX/error.log" -p "$NGX" -c "$NGX/nginx.conf" ||
	drp_fail "nginx rejects $NGX/nginx.conf"
NGINX_PID=
fresh_nginx()
{
	if [ -n "$NGINX_PID" ]; then drp_stop "$NGINX_PID" >/dev/null || true; fi
	rm -rf "$NGX/cache"
	mkdir -p "$NGX/cache"
	drp_bg nginx-cache nginx -e "$NGX/error.log" -p "$NGX" -c "$NGX/nginx.conf"
	NGINX_PID=$DRP_LAST_PID
	drp_wait_started nginx-cache "$NGINX_PID" 20 drp_port_open "${DRP_IP[cache.test]}" 443
	# Like the proxy's forged certificate: the first connection's costs
	# (worker start, upstream connection) are not the pull's.
	curl -sS --max-time 30 --resolve "cache.test:443:${DRP_IP[cache.test]}" \
		--cacert "$TEST_CA" --capath "$WORK/empty-certs" -o /dev/null \
		"https://cache.test/v2/" || drp_fail "the fresh nginx does not answer"
}

# fresh_proxy N: stop the previous proxy, start one on an empty cache, and
# let it forge the registry's certificate (a request it never caches).
PROXY_PID=
fresh_proxy()
{
	if [ -n "$PROXY_PID" ]; then
		bench_stop_proxy
		rm -rf "$PROXY_DIR/cache"
	fi
	bench_proxy "cold-$1"
	curl -sS --max-time 30 --proxy "$PROXY_URL" --noproxy '' --cacert "$PROXY_CA" \
		--capath "$WORK/empty-certs" -o /dev/null "https://registry.test/v2/" ||
		drp_fail "the fresh proxy does not answer"
}

# cpu_busy_ticks: busy and total ticks of all CPUs (/proc/stat), no fork.
cpu_busy_ticks()
{
	local user nice sys idle iowait rest
	read -r _ user nice sys idle iowait rest </proc/stat
	# shellcheck disable=SC2086 # the remaining fields, summed
	set -- $rest
	local irq=$(($1 + $2)) steal=$3 # guest time is in user already
	echo "$((user + nice + sys + irq)) $((user + nice + sys + idle + iowait + irq + steal))"
}

# timed VAR CMD...: run CMD, append its wall time to VAR's list; the
# proxy's CPU time over the same span goes to VAR_cpu (proxy runs only),
# and how many of the machine's CPUs were busy (all processes) to
# VAR_busy.
declare -A T=()
timed()
{
	local var=$1 t0 t1 c0=0 c1=0 b0 b1 u0=0 u1=0 s0=0 s1=0 side=
	shift
	# Start from clean page cache state: writeback of an earlier round's
	# files must not land in this one.
	sync
	if [ "${var#proxy}" != "$var" ]; then c0=$(bench_proc_cpu_ns "$PROXY_PID"); fi
	# shellcheck disable=SC2046 # one PID per word
	if [ "${var#nginx}" != "$var" ]; then c0=$(bench_cpu_ns $(drp_tree "$NGINX_PID")); fi
	[ "${var#proxy}" = "$var" ] || side=proxy
	[ "${var#nginx}" = "$var" ] || side=nginx
	# shellcheck disable=SC2046
	[ -z "$side" ] || read -r u0 s0 <<<"$(bench_ticks $(bench_server_pids $side))"
	b0=$(cpu_busy_ticks)
	t0=$(bench_now)
	"$@"
	t1=$(bench_now)
	b1=$(cpu_busy_ticks)
	if [ "${var#proxy}" != "$var" ]; then c1=$(bench_proc_cpu_ns "$PROXY_PID"); fi
	# shellcheck disable=SC2046
	if [ "${var#nginx}" != "$var" ]; then c1=$(bench_cpu_ns $(drp_tree "$NGINX_PID")); fi
	# shellcheck disable=SC2046
	[ -z "$side" ] || read -r u1 s1 <<<"$(bench_ticks $(bench_server_pids $side))"
	T[${var}_ut]=$((${T[${var}_ut]:-0} + u1 - u0))
	T[${var}_st]=$((${T[${var}_st]:-0} + s1 - s0))
	T[$var]="${T[$var]:-} $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
	T[${var}_cpu]="${T[${var}_cpu]:-} $(awk -v c="$((c1 - c0))" 'BEGIN { printf "%.3f", c / 1e9 }')"
	T[${var}_busy]="${T[${var}_busy]:-} $(awk -v a="$b0" -v b="$b1" -v n="$(nproc)" 'BEGIN {
		split(a, x, " "); split(b, y, " ")
		printf "%.2f", (y[2] > x[2] ? n * (y[1] - x[1]) / (y[2] - x[2]) : 0) }')"
}

# A proxy cold round: a fresh proxy, the timed pull, the check that the
# proxy really fetched (MISS) and then has the layer.
proxy_round()
{
	fresh_proxy "$1"
	timed proxy_pull pull_images "$WORK/p" via_proxy
	check_pull "$WORK/p"
	cache_has_content "$WORK/images/large/blobs/sha256/${LARGE_LAYER#sha256:}" ||
		drp_fail "the large layer is not in the proxy's cache after the pull"
	wait_log "$PROXY_DIR/access.log" 0 " $BLOB_PATH 200 " 1 5
	[ "$(grep -F " $BLOB_PATH 200 " "$PROXY_DIR/access.log" | awk '{ print $11 }')" = MISS ] ||
		drp_fail "the large layer was not a MISS: $(grep -F " $BLOB_PATH " "$PROXY_DIR/access.log")"
	fresh_proxy "${1}b"
	timed proxy_blob blob_proxy
	same_digest "$WORK/blob.bin" "$LARGE_LAYER" || drp_fail "blob through the proxy has the wrong digest"
	rm -f "$WORK/blob.bin"
}
nginx_round()
{
	fresh_nginx
	timed nginx_pull pull_images "$WORK/n" direct cache.test
	check_pull "$WORK/n"
	grep -qF "GET $BLOB_PATH HTTP/1.1\" 200 " "$NGX/access.log" ||
		drp_fail "nginx did not fetch the large layer"
	fresh_nginx
	timed nginx_blob blob_nginx
	same_digest "$WORK/blob.bin" "$LARGE_LAYER" || drp_fail "blob through nginx has the wrong digest"
	rm -f "$WORK/blob.bin"
}
direct_round()
{
	timed direct_pull pull_images "$WORK/d" direct
	check_pull "$WORK/d"
	timed direct_blob blob_direct
	same_digest "$WORK/blob.bin" "$LARGE_LAYER" || drp_fail "blob direct has the wrong digest"
	rm -f "$WORK/blob.bin"
}

# Warm-up, not counted: the registry's files into the page cache, skopeo
# and curl into memory, one proxy run.
drp_log "warm-up"
direct_round
proxy_round 0
nginx_round
T=()
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg), $(bench_idle 2)"

for ((r = 1; r <= ROUNDS; r++)); do
	if [ $((r % 2)) = 1 ]; then
		direct_round
		proxy_round "$r"
		nginx_round
	else
		nginx_round
		proxy_round "$r"
		direct_round
	fi
	drp_log "round $r: pull direct ${T[direct_pull]##* } s, proxy ${T[proxy_pull]##* } s, nginx ${T[nginx_pull]##* } s; blob direct ${T[direct_blob]##* } s, proxy ${T[proxy_blob]##* } s, nginx ${T[nginx_blob]##* } s"
done

if [ -n "${BENCH_PERF:-}" ]; then
	fresh_proxy perf
	bench_perf_start "$PROXY_PID" "$BENCH_PERF"
	blob_proxy
	bench_perf_stop
	same_digest "$WORK/blob.bin" "$LARGE_LAYER" || drp_fail "blob through the proxy has the wrong digest"
	rm -f "$WORK/blob.bin"
	drp_log "perf data in $BENCH_PERF (not counted in the table)"
fi

# ---------------------------------------------------------------- report

row()
{
	local what=$1 kind=$2 d p pc n nc
	# shellcheck disable=SC2086
	d=$(median ${T[direct_$kind]})
	# shellcheck disable=SC2086
	p=$(median ${T[proxy_$kind]})
	# shellcheck disable=SC2086
	pc=$(median ${T[proxy_${kind}_cpu]})
	# shellcheck disable=SC2086
	n=$(median ${T[nginx_$kind]})
	# shellcheck disable=SC2086
	nc=$(median ${T[nginx_${kind}_cpu]})
	awk -v w="$what" -v d="$d" -v p="$p" -v pc="$pc" -v n="$n" -v nc="$nc" 'BEGIN {
		printf "%-30s %7.3f | %7.3f %8.1f%% %6.3f | %7.3f %8.1f%% %6.3f\n", w, d,
			p, 100 * (p - d) / d, pc, n, 100 * (n - d) / d, nc }'
	echo "    rounds direct:${T[direct_$kind]}"
	echo "    rounds proxy: ${T[proxy_$kind]}"
	echo "    rounds nginx: ${T[nginx_$kind]}"
	awk -v pu="${T[proxy_${kind}_ut]:-0}" -v ps="${T[proxy_${kind}_st]:-0}" \
		-v nu="${T[nginx_${kind}_ut]:-0}" -v ns="${T[nginx_${kind}_st]:-0}" '
		function share(u, s) { return u + s > 0 ? sprintf("%.0f%%", 100 * s / (u + s)) : "-" }
		BEGIN { printf "    in the kernel, share of the server'"'"'s CPU (all rounds, ticks): proxy %s, nginx %s\n",
			share(pu, ps), share(nu, ns) }'
	# shellcheck disable=SC2086
	echo "    busy CPUs (of $(nproc)), median: direct $(median ${T[direct_${kind}_busy]}), proxy $(median ${T[proxy_${kind}_busy]}), nginx $(median ${T[nginx_${kind}_busy]})"
}

echo
echo "== cold pull: images test/large ($BENCH_MB MiB layer) + test/small, $ROUNDS rounds, $(nproc) CPUs, load before: $LOAD_BEFORE"
echo "proxy: $DRP_PROXY, $BENCH_WORKERS workers, empty cache each round; skopeo $(skopeo --version | awk '{ print $3 }') to dir:"
echo
echo "upstream link: ${BENCH_UPSTREAM_RATE:-loopback, unlimited} (BENCH_UPSTREAM_RATE)"
echo "nginx: $(nginx -v 2>&1 | sed 's/.*: //'), proxy_cache (bench/nginx-cache.conf.in), $BENCH_WORKERS workers, empty cache each round"
echo
printf '%-30s %7s | %7s %9s %6s | %7s %9s %6s\n' "median wall time (s)" direct proxy overhead "CPU s" nginx overhead "CPU s"
row "skopeo copy large+small" pull
row "curl GET of the large layer" blob
# shellcheck disable=SC2086
awk -v d="$(median ${T[direct_pull]})" -v p="$(median ${T[proxy_pull]})" 'BEGIN {
	o = 100 * (p - d) / d
	printf "\ncold pull overhead %.1f%%: %s\n", o, o < 10 ? "under the 10% target" : "NOT under the 10% target" }'
# shellcheck disable=SC2086
awk -v d="$(median ${T[direct_pull]})" -v n="$(median ${T[nginx_pull]})" 'BEGIN {
	printf "nginx as the cache: cold pull overhead %.1f%%\n", 100 * (n - d) / d }'
# On CPUs that the pull keeps busy, every CPU second the proxy spends
# costs about 1/CPUs seconds of wall time.
# shellcheck disable=SC2086
awk -v d="$(median ${T[direct_pull]})" -v pc="$(median ${T[proxy_pull_cpu]})" \
	-v b="$(median ${T[direct_pull_busy]})" -v n="$(nproc)" 'BEGIN {
	printf "the proxy'"'"'s %.3f CPU s per pull, spread over %d CPUs, are %.1f%% of the direct pull (which kept %.2f CPUs busy)\n",
		pc, n, 100 * pc / n / d, b }'
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg), $(bench_idle 2)"
bench_stop_proxy
