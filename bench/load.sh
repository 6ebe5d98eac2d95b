#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Load benchmark: many clients and many small requests through the proxy's
# TLS interception, side by side with nginx as a TLS reverse cache of the
# same registry content, driven by bench/loadgen (one thread, pinned to a
# core of its own; the servers are pinned to another). Nothing here is a
# pass/fail threshold: the script fails only if the set-up fails, a server
# dies, or a served byte is wrong.
#
# Scenarios (all by default, or those named after BUILD_DIR; they run in
# the order small rate clients idle fdlimit, idle on fresh servers):
#   idle     BENCH_LOAD_IDLE (10000) intercepted connections held open and
#            idle after one request; the proxy's RSS before, held and
#            after, per connection (goal <= 64 KB); nginx the same
#   small    cached manifest GET and HEAD (by tag), a 4 KiB blob, from
#            BENCH_LOAD_KA (64) keep-alive connections, closed loop; new
#            connections each doing CONNECT + handshake (no resumption) + 3
#            requests; the proxy's mirror port (plain HTTP); requests/s and
#            CPU per request against nginx's, median of BENCH_ROUNDS
#   rate     BENCH_LOAD_RATE (50000) cached manifest GETs per second
#            attempted from BENCH_LOAD_KA keep-alive connections: rate
#            achieved, latency from when each request was due
#   clients  BENCH_LOAD_CLIENTS (1000) concurrent clients, each connection
#            BENCH_LOAD_PER_CLIENT (4) requests then a new one, over a mix
#            of cached and uncached manifests and blobs (half of the
#            BENCH_LOAD_IMAGES images were never asked for), every body
#            checked against its digest, BENCH_LOAD_CLIENT_REQS requests
#   fdlimit  the proxy with `ulimit -n` BENCH_FD_LIMIT (256): connections
#            held until descriptors run out, then clients that keep
#            connecting, then clients that wait: the proxy's CPU (a spin
#            shows as a busy core) and whether it serves again after
#
# usage: sudo bench/load.sh BUILD_DIR [SCENARIO...]
# env:   BENCH_LOAD_DURATION [10] seconds per measured run
#        BENCH_ROUNDS [3]      rounds of small and rate (alternating sides)
#        BENCH_SERVER_CPU [0]  BENCH_GEN_CPU [1]   taskset cores
#        BENCH_WORKERS [1]     proxy workers = nginx worker_processes
#        BENCH_LOAD_IMAGES [400] BENCH_LOAD_LAYER_MAX [262144]
#        BENCH_LOAD_IDLE_ROUNDS [2]  rounds of the idle scenario
#        BENCH_FD_WORKERS [2]  workers of the fdlimit proxy
#        BENCH_NOFILE [ulimit -Hn]  descriptors of servers and generator
#        and those of bench/lib.sh (BENCH_IT_LOCK, BENCH_KEEP, ...)
set -euo pipefail
BENCH_MB=${BENCH_MB:-1} # the large image of lib.sh is not used here
BENCH_WORKERS=${BENCH_WORKERS:-1}
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

DUR=${BENCH_LOAD_DURATION:-10}
ROUNDS=${BENCH_ROUNDS:-3}
KA=${BENCH_LOAD_KA:-64}
RATE=${BENCH_LOAD_RATE:-50000}
CLIENTS=${BENCH_LOAD_CLIENTS:-1000}
PER_CLIENT=${BENCH_LOAD_PER_CLIENT:-4}
CLIENT_REQS=${BENCH_LOAD_CLIENT_REQS:-20000}
IDLE=${BENCH_LOAD_IDLE:-10000}
IDLE_ROUNDS=${BENCH_LOAD_IDLE_ROUNDS:-2}
IMAGES=${BENCH_LOAD_IMAGES:-400}
LAYER_MAX=${BENCH_LOAD_LAYER_MAX:-262144}
SRV_CPU=${BENCH_SERVER_CPU:-0}
GEN_CPU=${BENCH_GEN_CPU:-1}
FD_LIMIT=${BENCH_FD_LIMIT:-256}
FD_WORKERS=${BENCH_FD_WORKERS:-2}
# Descriptors of the servers and the generator: the hard limit (raising
# it needs CAP_SYS_RESOURCE, which a container may not have).
NOFILE=${BENCH_NOFILE:-$(ulimit -Hn)}
[ "$NOFILE" = unlimited ] && NOFILE=1048576
# Per-request and set-up timeout of the generator; also its bound on the
# drain at the end of a run.
LG_TIMEOUT=${BENCH_LOAD_TIMEOUT:-30}

BUILD=${1:-}
shift || true
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(small rate clients idle fdlimit)
for s in "${SCENARIOS[@]}"; do
	case $s in idle | small | rate | clients | fdlimit) ;;
	*) echo "unknown scenario $s (idle small rate clients fdlimit)" >&2 && exit 2 ;;
	esac
done
LOADGEN=${LOADGEN:-$BUILD/bench/loadgen}
[ -x "$LOADGEN" ] || {
	echo "no $LOADGEN: build it first (make)" >&2
	exit 2
}

[ "$NOFILE" -gt $((IDLE + CLIENTS + 200)) ] || {
	echo "ulimit -Hn is $NOFILE: too few for $IDLE idle connections (BENCH_LOAD_IDLE)" >&2
	exit 2
}
bench_init "$BUILD"
drp_require_tools taskset prlimit
[ "$(nproc)" -gt "$(printf '%s\n' "$SRV_CPU" "$GEN_CPU" | sort -n | tail -n 1)" ] ||
	drp_fail "cores $SRV_CPU and $GEN_CPU: this machine has $(nproc)"

# ---------------------------------------------------------------- content

drp_log "pushing $IMAGES small images (layers up to $LAYER_MAX bytes)"
python3 "$BENCH_DIR/loadimages.py" "${DRP_IP[registry.test]}" registry.test "$TEST_CA" \
	load "$IMAGES" "$LAYER_MAX" >"$WORK/images.txt" || drp_fail "pushing the load images failed"

# Request lists (METHOD PATH SIZE): image 0 for the small requests; the
# first half of the images are the cached ones, the second half stays
# uncached until the clients scenario asks for it.
L=$WORK/lists
mkdir -p "$L"
awk '$1 == 0 && $2 == "GET" && $3 ~ /manifests\/v1$/ { print $2, $3, $4 }' "$WORK/images.txt" >"$L/m_get"
awk '$1 == 0 && $2 == "HEAD" { print $2, $3, $4 }' "$WORK/images.txt" >"$L/m_head"
awk '$1 == 0 && $2 == "GET" && $3 ~ /blobs/ && $4 == 4096 { print $2, $3, $4 }' "$WORK/images.txt" >"$L/blob4k"
# A pull's first requests on a new connection: HEAD by tag, the manifest
# by digest, the config.
awk '$1 == 0 && ($2 == "HEAD" || $3 ~ /manifests\/sha256:/) { print $2, $3, $4 }
	$1 == 0 && $3 ~ /blobs/ && $4 < 4096 { print $2, $3, $4 }' "$WORK/images.txt" >"$L/newconn"
awk -v n="$IMAGES" '$1 < n / 2 { print $2, $3, $4 }' "$WORK/images.txt" >"$L/warm"
# The mix: every request of every image, in an order fixed by a seed, so
# cached and uncached ones alternate from the start.
awk 'BEGIN { srand(14) } { print rand(), $2, $3, $4 }' "$WORK/images.txt" | sort -k1,1g |
	cut -d' ' -f2- >"$L/mix"
for f in "$L"/*; do
	[ -s "$f" ] || drp_fail "empty request list $f"
	# the mirror's form: ?ns= names the registry
	sed 's|^\([A-Z]*\) \([^ ]*\)|\1 \2?ns=registry.test|' "$f" >"$f.mirror"
done

# ---------------------------------------------------------------- servers

CACHE_DIR=$WORK/load-cache
# load_proxy NAME NOFILE WORKERS [CACHE]: a proxy pinned to SRV_CPU with
# that many descriptors, its cache in CACHE [$WORK/load-cache].
load_proxy()
{
	local name=$1 nofile=$2 workers=$3 d=$WORK/$1 cache=${4:-$CACHE_DIR}
	mkdir -p "$d"
	cat >"$d/proxy.ini" <<-EOF
		; load benchmark proxy "$name"
		[proxy]
		listen = 127.0.0.1:$(drp_free_port)
		workers = $workers
		registries = registry.test
		allow = 127.0.0.1/32
		ca_dir = $d/ca
		upstream_ca_file = $TEST_CA
		access_log = $d/access.log
		error_log = $d/proxy.log
		log_level = ${BENCH_LOG_LEVEL:-notice}
		max_connections = $((IDLE + CLIENTS + 100))
		idle_timeout = 10m
		[resolve]
		registry.test = ${DRP_IP[registry.test]}:443
		[cache]
		dir = $cache
	EOF
	DRP_PROXY_WRAPPER="prlimit --nofile=$nofile:$nofile taskset -c $SRV_CPU" drp_start_proxy "$name"
}

NGX=$WORK/nginx-load
mkdir -p "$NGX/tmp" "$NGX/cache"
sed -e "s|@WORKERS@|$BENCH_WORKERS|g" -e "s|@DIR@|$NGX|g" -e "s|@PKI@|$WORK/pki|g" \
	-e "s|@IP@|${DRP_IP[cache.test]}|g" -e "s|@UPSTREAM@|${DRP_IP[registry.test]}|g" \
	-e "s|^worker_processes \(.*\)|worker_processes \1\nworker_rlimit_nofile $NOFILE;|" \
	-e "s|worker_connections 1024;|worker_connections $((IDLE + CLIENTS + 100));|" \
	-e "s|keepalive_timeout 60s;|keepalive_timeout 600s;\n    keepalive_requests 1000000000;|" \
	"$BENCH_DIR/nginx-cache.conf.in" >"$NGX/nginx.conf"
nginx -t -q -e "$NGX/error.log" -p "$NGX" -c "$NGX/nginx.conf" ||
	drp_fail "nginx rejects $NGX/nginx.conf"
NGINX_PID=
start_nginx()
{
	drp_bg nginx-load prlimit --nofile="$NOFILE:$NOFILE" taskset -c "$SRV_CPU" \
		nginx -e "$NGX/error.log" -p "$NGX" -c "$NGX/nginx.conf"
	NGINX_PID=$DRP_LAST_PID
	drp_wait_started nginx-load "$NGINX_PID" 20 drp_port_open "${DRP_IP[cache.test]}" 443
}
# The nginx processes that serve (master and workers; the cache loader
# comes and goes).
nginx_pids() { drp_tree "$NGINX_PID"; }

# ---------------------------------------------------------------- generator

# lg LABEL ARGS...: one generator run, pinned to GEN_CPU, bounded; its
# report goes to stderr, its RESULT line to $WORK/res/LABEL.
mkdir -p "$WORK/res"
lg()
{
	local label=$1 out
	shift
	out=$WORK/res/$label
	if ! timeout $((${BENCH_LG_BOUND:-600})) prlimit --nofile="$NOFILE:$NOFILE" \
		taskset -c "$GEN_CPU" "$LOADGEN" --label "$label" --timeout "$LG_TIMEOUT" "$@" \
		>"$out.out" 2>"$out.err"; then
		cat "$out.out" "$out.err" >&2
		drp_fail "loadgen $label failed"
	fi
	grep -v '^RESULT' "$out.out" | sed 's/^/    /' >&2
	grep '^RESULT' "$out.out" >"$out" || drp_fail "loadgen $label printed no result"
}
# res LABEL KEY: a value of LABEL's RESULT line.
res() { tr ' ' '\n' <"$WORK/res/$1" | sed -n "s/^$2=//p"; }

# Each side's way in: the proxy by CONNECT (its CA), nginx directly
# (the test CA), the proxy's mirror port in plain HTTP.
side_args()
{
	local p
	case $1 in
	proxy) echo "--mode connect --server 127.0.0.1:$PROXY_PORT --host registry.test:443 --ca $PROXY_CA --pid $PROXY_PID" ;;
	nginx)
		echo -n "--mode tls --server ${DRP_IP[cache.test]}:443 --host cache.test --ca $TEST_CA"
		for p in $(nginx_pids); do echo -n " --pid $p"; done
		echo
		;;
	mirror) echo "--mode plain --server 127.0.0.1:$PROXY_PORT --pid $PROXY_PID" ;;
	esac
}
# list SIDE NAME: the request list of a side.
list() { if [ "$1" = mirror ]; then echo "$L/$2.mirror"; else echo "$L/$2"; fi; }

# Requests the registry saw (its own access log): what reached upstream.
REG_LOG=$WORK/logs/reg-open.out
upstream_requests() { grep -c '"\(GET\|HEAD\) /v2/load/' "$REG_LOG" || true; }
# settled_upstream_requests: the count once the registry has logged every
# request it answered so far (settle_upstream: a request of our own,
# waited for in its log; it logs a request after answering it).
settled_upstream_requests()
{
	settle_upstream registry.test "$REG_LOG"
	upstream_requests
}

# wait_line PID FILE REGEX SECONDS: until FILE has a line matching REGEX;
# fails if PID ends first or the time runs out.
wait_line()
{
	local i
	for ((i = 0; i < $4 * 5; i++)); do
		grep -q -- "$3" "$2" 2>/dev/null && return 0
		kill -0 "$1" 2>/dev/null || return 1
		sleep 0.2
	done
	return 1
}

# must_be_errorless LABEL: a run whose every request must succeed.
must_be_errorless()
{
	local e
	e=$(res "$1" errors)
	[ "$e" = 0 ] || drp_fail "$1: $e errors (see above)"
}

# warm SIDE: every cached request twice; the second pass must not reach
# the registry at all (counted in the registry's own log), and every body
# of the first must match its digest and size.
warm()
{
	local side=$1 n u0 u1
	n=$(wc -l <"$(list "$side" warm)")
	# shellcheck disable=SC2046
	lg "warm-$side-1" $(side_args "$side") --requests "$(list "$side" warm)" -c 16 -k 0 \
		-n "$n" -d 300 --verify
	must_be_errorless "warm-$side-1"
	u0=$(settled_upstream_requests)
	# shellcheck disable=SC2046
	lg "warm-$side-2" $(side_args "$side") --requests "$(list "$side" warm)" -c 16 -k 0 \
		-n "$n" -d 300 --verify
	must_be_errorless "warm-$side-2"
	u1=$(settled_upstream_requests)
	[ "$u1" = "$u0" ] || drp_fail "$side: the second warm pass sent $((u1 - u0)) requests upstream"
	drp_log "$side: $n cached requests warm (second pass: 0 upstream requests)"
}

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg), $(bench_idle 2)"
load_proxy load "$NOFILE" "$BENCH_WORKERS"
start_nginx
warm proxy
warm nginx
# The mirror port shares the proxy's cache: its warm pass must reach the
# registry not at all either.
warm mirror

declare -A V=() # "scenario side key" -> values of the rounds
add() { V["$1 $2 $3"]="${V["$1 $2 $3"]:-} $4"; }
# vsum SCENARIO SIDE KEY: the sum over the rounds.
vsum() { awk '{ for (i = 1; i <= NF; i++) s += $i } END { print s + 0 }' <<<"${V["$1 $2 $3"]:-}"; }
med() {
	# shellcheck disable=SC2086
	median ${V["$1 $2 $3"]:-}
}

# ---------------------------------------------------------------- idle

# side_pids SIDE: the server processes of a side.
side_pids()
{
	if [ "$1" = nginx ]; then nginx_pids; else echo "$PROXY_PID"; fi
}
# side_kb SIDE FIELD: a /proc/PID/status field (kB), summed over the side.
side_kb()
{
	local p sum=0 v
	for p in $(side_pids "$1"); do
		v=$(awk -v f="$2:" '$1 == f { print $2 }' /proc/"$p"/status 2>/dev/null) || v=0
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}
# side_fds SIDE: open descriptors of the side's processes.
side_fds()
{
	local p n=0
	for p in $(side_pids "$1"); do
		n=$((n + $(find /proc/"$p"/fd -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)))
	done
	echo "$n"
}
# reset_peak SIDE: VmHWM starts again from the current RSS (Linux >= 4.0),
# so that a scenario's peak is its own.
reset_peak()
{
	local p
	for p in $(side_pids "$1"); do echo 5 >/proc/"$p"/clear_refs 2>/dev/null || true; done
}
# fds_back SIDE BASELINE: the side has closed what the generator closed
# (its descriptors are within 16 of BASELINE; bounded).
fds_back()
{
	local i
	for ((i = 0; i < 150; i++)); do
		[ "$(side_fds "$1")" -le $(($2 + 16)) ] && return 0
		sleep 0.2
	done
	drp_log "$1 still has $(side_fds "$1") descriptors open (was $2)"
}

# forget_proxy PID: a proxy stopped on purpose is not checked at exit.
forget_proxy()
{
	local p keep=()
	for p in "${DRP_WATCHED_PROXIES[@]}"; do [ "${p%%:*}" = "$1" ] || keep+=("$p"); done
	DRP_WATCHED_PROXIES=("${keep[@]}")
}

scen_idle()
{
	local side label r fd0
	# Fresh servers (the same caches): RSS0 is a server's own, not what
	# the scenarios before left.
	drp_check_proxy "$PROXY_PID" "$PROXY_NAME" >&2 || drp_fail "proxy $PROXY_NAME did not stop cleanly"
	forget_proxy "$PROXY_PID"
	load_proxy load-idle "$NOFILE" "$BENCH_WORKERS"
	drp_stop "$NGINX_PID" >/dev/null || true
	start_nginx
	for side in proxy nginx; do
		# shellcheck disable=SC2046
		lg "idle-$side-0" $(side_args "$side") --requests "$L/m_head" -c 1 -k 0 -n 2 -d 30
		must_be_errorless "idle-$side-0"
	done
	for side in proxy nginx; do
		fd0=$(side_fds "$side")
		reset_peak "$side"
		# More than once: the later rounds show whether what the
		# first one left (RSS not given back) is reused, or grows.
		for ((r = 1; r <= IDLE_ROUNDS; r++)); do
			label=idle-$side-$r
			drp_log "idle: $IDLE connections held on $side (round $r)"
			# shellcheck disable=SC2046
			lg "$label" $(side_args "$side") --requests "$L/m_head" --hold "$IDLE" \
				--hold-requests 1 -d 5 --max-connecting 128
			fds_back "$side" "$fd0"
			add idle "$side" after "$(side_kb "$side" VmRSS)"
			add idle "$side" held "$(res "$label" rss_held_kb)"
		done
	done
}

# ---------------------------------------------------------------- small

SMALL_ROWS=(m_get m_head blob4k newconn)
declare -A SMALL_NAME=([m_get]="manifest GET (tag), keep-alive"
	[m_head]="manifest HEAD (tag), keep-alive"
	[blob4k]="4 KiB blob GET, keep-alive"
	[newconn]="new conn: CONNECT+TLS+3 req"
	[m_get_mirror]="manifest GET, mirror port (plain)")

# small_run ROW SIDE ROUND
small_run()
{
	local row=$1 side=$2 r=$3 label=small-$1-$2-$3 k=0
	[ "$row" = newconn ] && k=3
	# shellcheck disable=SC2046
	lg "$label" $(side_args "$side") --requests "$(list "$side" "$row")" -c "$KA" -k "$k" -d "$DUR"
	local key
	for key in rps p50_ms p99_ms errors srv_us_per_req cli_us_per_req srv_cpu_s wall_s; do
		add "small-$row" "$side" "$key" "$(res "$label" "$key")"
	done
}

scen_small()
{
	local r row
	for ((r = 1; r <= ROUNDS; r++)); do
		for row in "${SMALL_ROWS[@]}"; do
			# the side that goes first alternates
			if ((r % 2)); then
				small_run "$row" proxy "$r"
				small_run "$row" nginx "$r"
			else
				small_run "$row" nginx "$r"
				small_run "$row" proxy "$r"
			fi
		done
		small_run m_get mirror "$r"
	done
}

# ---------------------------------------------------------------- rate

scen_rate()
{
	local r side label key
	for ((r = 1; r <= ROUNDS; r++)); do
		for side in proxy nginx; do
			label=rate-$side-$r
			# shellcheck disable=SC2046
			lg "$label" $(side_args "$side") --requests "$L/m_get" -c "$KA" -k 0 \
				-r "$RATE" -d "$DUR"
			for key in rps p50_ms p99_ms svc_p50_ms svc_p99_ms errors issued srv_us_per_req cli_us_per_req srv_cpu_s wall_s; do
				add rate "$side" "$key" "$(res "$label" "$key")"
			done
		done
	done
}

# ---------------------------------------------------------------- clients

scen_clients()
{
	local side label u0 u1
	for side in proxy nginx; do
		label=clients-$side
		u0=$(settled_upstream_requests)
		reset_peak "$side"
		drp_log "clients: $CLIENTS concurrent clients on $side"
		# shellcheck disable=SC2046
		lg "$label" $(side_args "$side") --requests "$L/mix" -c "$CLIENTS" -k "$PER_CLIENT" \
			-n "$CLIENT_REQS" -d 300 --verify --max-connecting 256
		u1=$(settled_upstream_requests)
		add clients "$side" upstream $((u1 - u0))
	done
}

# ---------------------------------------------------------------- fdlimit

scen_fdlimit()
{
	local holder c0 c1 t0 t1 waiter
	load_proxy fdlimit "$FD_LIMIT" "$FD_WORKERS" "$WORK/fdlimit/cache"
	FD_PID=$PROXY_PID
	# shellcheck disable=SC2046
	lg fd-warm $(side_args proxy) --requests "$L/newconn" -c 1 -k 0 -n 6 -d 30 --verify
	must_be_errorless fd-warm
	drp_log "fdlimit: proxy with $FD_LIMIT descriptors, $FD_WORKERS workers; holding $((FD_LIMIT + 64)) connections"
	# Hold more connections than the proxy has descriptors; the rest
	# are refused (counted, expected).
	# shellcheck disable=SC2046
	timeout 300 prlimit --nofile="$NOFILE:$NOFILE" taskset -c "$GEN_CPU" "$LOADGEN" \
		--label fd-hold $(side_args proxy) --requests "$L/m_head" --hold $((FD_LIMIT + 64)) \
		--hold-requests 1 -d $((3 * DUR + 30)) --timeout 5 --max-connecting 64 \
		>"$WORK/res/fd-hold.out" 2>"$WORK/res/fd-hold.err" &
	holder=$!
	wait_line "$holder" "$WORK/res/fd-hold.out" '^loadgen: held' 120 ||
		drp_fail "the holder did not finish setting up: $(cat "$WORK/res/fd-hold.err")"
	grep '^loadgen: held' "$WORK/res/fd-hold.out" | sed 's/^/    /' >&2
	# Clients that keep connecting (each one closed at once, or refused).
	# shellcheck disable=SC2046
	lg fd-churn $(side_args proxy) --requests "$L/newconn" -c 64 -k 1 -d "$DUR" --timeout 5
	# Clients that connect and wait (not retrying): a server that spins
	# on a listener it cannot accept from burns a core meanwhile.
	# shellcheck disable=SC2046
	timeout 120 prlimit --nofile="$NOFILE:$NOFILE" taskset -c "$GEN_CPU" "$LOADGEN" \
		--label fd-wait $(side_args proxy) --requests "$L/newconn" --hold 64 --hold-requests 1 \
		-d 1 --timeout "$DUR" --max-connecting 64 \
		>"$WORK/res/fd-wait.out" 2>"$WORK/res/fd-wait.err" &
	waiter=$!
	sleep 1
	c0=$(bench_proc_cpu_ns "$FD_PID")
	t0=$(bench_now)
	sleep "$((DUR / 2))"
	c1=$(bench_proc_cpu_ns "$FD_PID")
	t1=$(bench_now)
	FD_WAIT_CORES=$(awk -v c="$((c1 - c0))" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", c / 1e9 / (b - a) }')
	wait "$waiter" || true
	grep -v '^RESULT' "$WORK/res/fd-wait.out" | sed 's/^/    /' >&2
	kill -TERM "$holder" 2>/dev/null || true
	wait "$holder" || true
	# Descriptors are free again: the proxy must serve.
	# shellcheck disable=SC2046
	lg fd-after $(side_args proxy) --requests "$L/m_get" -c 4 -k 0 -n 100 -d 30
	must_be_errorless fd-after
	FD_LOG_LINES=$(grep -c 'out of file descriptors' "$WORK/fdlimit/proxy.log" || true)
	FD_LOG_BYTES=$(stat -c %s "$WORK/fdlimit/proxy.log")
	drp_check_proxy "$FD_PID" fdlimit >&2 || drp_fail "the fdlimit proxy did not stop cleanly"
	forget_proxy "$FD_PID"
}

has() { [[ " ${SCENARIOS[*]} " == *" $1 "* ]]; }
# Always in this order: idle starts fresh servers (what it measures is
# RSS), and what it leaves (RSS not given back) must not count as the
# peak of another scenario.
for s in small rate clients idle fdlimit; do
	if has "$s"; then "scen_$s"; fi
done
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg), $(bench_idle 2)"

# ---------------------------------------------------------------- report

echo
echo "== load benchmark: $(nproc) CPUs, servers on CPU $SRV_CPU, generator on CPU $GEN_CPU"
echo "load before: $LOAD_BEFORE"
echo "load after:  $LOAD_AFTER"
echo "proxy: $DRP_PROXY ($("$DRP_PROXY" --version 2>/dev/null | head -n 1)), workers $BENCH_WORKERS"
echo "nginx: $(nginx -v 2>&1 | sed 's/.*: //'), worker_processes $BENCH_WORKERS, proxy_cache"
echo "TLS 1.3, AES-128-GCM, no resumption; server CPU = utime+stime of /proc/PID/stat over the run"
echo

if has idle; then
	echo "-- $IDLE idle connections held (after one HEAD each), $IDLE_ROUNDS rounds"
	printf '%-6s %7s %8s %9s %9s %11s   %s\n' server held "RSS0 MB" "held MB" "peak MB" "KB per conn" \
		"RSS MB held / after the close, each round"
	for side in proxy nginx; do
		awk -v s="$side" -v h="$(res "idle-$side-1" held)" -v r0="$(res "idle-$side-1" rss_start_kb)" \
			-v r1="$(res "idle-$side-1" rss_held_kb)" -v pk="$(res "idle-$side-$IDLE_ROUNDS" hwm_held_kb)" \
			-v held="${V["idle $side held"]# }" -v after="${V["idle $side after"]# }" \
			-v e="$(for ((r = 1; r <= IDLE_ROUNDS; r++)); do res "idle-$side-$r" errors; done |
				awk '{ s += $1 } END { print s }')" 'BEGIN {
			n = split(held, H, " "); split(after, A, " "); l = ""
			for (i = 1; i <= n; i++) l = l sprintf("%s%.1f/%.1f", i > 1 ? "  " : "", H[i] / 1024, A[i] / 1024)
			printf "%-6s %7d %8.1f %9.1f %9.1f %11.1f   %s%s\n", s, h, r0 / 1024, r1 / 1024, pk / 1024,
				h ? (r1 - r0) / h : 0, l, (e > 0 ? "  (" e " errors)" : "") }'
	done
	echo "(KB per conn = (held - RSS0) / held, first round; peak = VmHWM over all rounds;"
	echo " nginx: master + workers summed)"
	echo
fi

small_row()
{
	local row=$1 side=$2 label=$3
	awk -v l="$label" -v s="$side" -v rps="$(med "small-$row" "$side" rps)" \
		-v p50="$(med "small-$row" "$side" p50_ms)" -v p99="$(med "small-$row" "$side" p99_ms)" \
		-v e="$(vsum "small-$row" "$side" errors)" \
		-v su="$(med "small-$row" "$side" srv_us_per_req)" -v cu="$(med "small-$row" "$side" cli_us_per_req)" \
		-v list="${V["small-$row $side rps"]# }" 'BEGIN {
		printf "%-34s %-6s %9.0f %8.3f %8.3f %7d %9.1f %9.1f   %s\n", l, s, rps, p50, p99, e, su, cu, list }'
}

if has small; then
	echo "-- small requests: $KA connections, closed loop, $DUR s per run, medians of $ROUNDS rounds"
	printf '%-34s %-6s %9s %8s %8s %7s %9s %9s   %s\n' request server "req/s" "p50 ms" "p99 ms" errors \
		"srv us/r" "cli us/r" "req/s of each round"
	for row in "${SMALL_ROWS[@]}"; do
		small_row "$row" proxy "${SMALL_NAME[$row]}"
		small_row "$row" nginx ""
		awk -v pr="$(med "small-$row" proxy rps)" -v nr="$(med "small-$row" nginx rps)" \
			-v pc="$(med "small-$row" proxy srv_us_per_req)" -v nc="$(med "small-$row" nginx srv_us_per_req)" 'BEGIN {
			printf "%-34s proxy/nginx: rate %.2fx, server CPU per request %.2fx\n", "", nr ? pr / nr : 0, nc ? pc / nc : 0 }'
	done
	small_row m_get mirror "${SMALL_NAME[m_get_mirror]}"
	echo "(new conn: $KA concurrent clients, each connection 3 requests: HEAD by tag, GET by digest, GET config)"
	echo
fi

if has rate; then
	echo "-- $RATE cached manifest GETs/s attempted from $KA keep-alive connections, $DUR s, medians of $ROUNDS"
	printf '%-6s %10s %10s %8s %9s %9s %9s %9s %7s %9s\n' server attempted achieved "of att" "p50 ms" "p99 ms" \
		"svc p50" "svc p99" errors "srv us/r"
	for side in proxy nginx; do
		awk -v s="$side" -v a="$RATE" -v rps="$(med rate "$side" rps)" -v p50="$(med rate "$side" p50_ms)" \
			-v p99="$(med rate "$side" p99_ms)" -v s50="$(med rate "$side" svc_p50_ms)" \
			-v s99="$(med rate "$side" svc_p99_ms)" \
			-v e="$(vsum rate "$side" errors)" \
			-v su="$(med rate "$side" srv_us_per_req)" 'BEGIN {
			printf "%-6s %10d %10.0f %7.1f%% %9.3f %9.3f %9.3f %9.3f %7d %9.1f\n", s, a, rps, 100 * rps / a,
				p50, p99, s50, s99, e, su }'
	done
	echo "(p50/p99 count from when each request was due; svc from when it was sent)"
	echo
fi

if has clients; then
	echo "-- $CLIENTS concurrent clients, $PER_CLIENT requests per connection, $CLIENT_REQS requests over $(wc -l <"$L/mix") distinct ones ($(($(wc -l <"$L/mix") - $(wc -l <"$L/warm"))) never asked before), bodies checked"
	printf '%-6s %8s %7s %9s %8s %8s %10s %10s %9s %9s %15s\n' server ok errors "req/s" "p50 ms" "p99 ms" \
		"conn p50" "conn p99" "upstream" "srv us/r" "RSS MB (peak)"
	for side in proxy nginx; do
		l=clients-$side
		awk -v s="$side" -v ok="$(res "$l" ok)" -v e="$(res "$l" errors)" -v rps="$(res "$l" rps)" \
			-v p50="$(res "$l" p50_ms)" -v p99="$(res "$l" p99_ms)" -v c50="$(res "$l" setup_p50_ms)" \
			-v c99="$(res "$l" setup_p99_ms)" -v up="$(med clients "$side" upstream)" \
			-v su="$(res "$l" srv_us_per_req)" -v r0="$(res "$l" rss0_kb)" -v pk="$(res "$l" hwm_kb)" 'BEGIN {
			printf "%-6s %8d %7d %9.0f %8.3f %8.3f %10.3f %10.3f %9d %9.1f %7.1f (%5.1f)\n", s, ok, e, rps, p50,
				p99, c50, c99, up, su, r0 / 1024, pk / 1024 }'
	done
	echo "(conn = TCP connect + CONNECT + handshake for the proxy, connect + handshake for nginx;"
	echo " upstream = requests the registry saw during the run; RSS at the start, peak = VmHWM during the run)"
	echo
fi

if has fdlimit; then
	echo "-- descriptors exhausted: proxy with ulimit -n $FD_LIMIT, $FD_WORKERS workers"
	echo "holder: $(grep '^loadgen: held' "$WORK/res/fd-hold.out" | sed 's/^loadgen: //')"
	awk -v att="$(res fd-churn conns_opened)" -v w="$(res fd-churn wall_s)" -v cpu="$(res fd-churn srv_cpu_s)" \
		-v ok="$(res fd-churn ok)" 'BEGIN {
		printf "clients reconnecting: %d connection attempts in %.1f s (%.0f/s), %d answered; proxy CPU %.2f s = %.0f%% of a core, %.1f us per attempt\n",
			att, w, att / w, ok, cpu, 100 * cpu / w, att ? 1e6 * cpu / att : 0 }'
	echo "clients waiting (64, not retrying): proxy CPU $FD_WAIT_CORES cores$(awk -v c="$FD_WAIT_CORES" 'BEGIN { if (c > 0.5) print " (SPIN)" }')"
	echo "after the holders left: $(res fd-after ok) of 100 requests ok"
	echo "'out of file descriptors' log lines: $FD_LOG_LINES (log $FD_LOG_BYTES bytes)"
	echo
fi
