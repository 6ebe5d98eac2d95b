# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# shellcheck disable=SC2034 # variables set here are used by the sourcing scripts
#
# Shared set-up of bench/serve.sh and bench/cold.sh. It reuses the
# integration-test library (tests/integration/lib.sh: work dir, test PKI,
# private /etc/hosts namespaces, the real docker-registry, the deterministic
# test images, process handling), but on loopback addresses of its own, so a
# benchmark never collides with an integration run on the same machine:
#   registry.test  $BENCH_REGISTRY_IP:443  (default 127.0.0.41) docker-registry
#   cache.test     $BENCH_NGINX_IP:443     (default 127.0.0.42) nginx TLS
#                                          reverse cache (serve.sh only)
# The proxy listens on 127.0.0.1:<free port>. Benchmark runs serialise on
# their own lock ($BENCH_LOCK); with BENCH_IT_LOCK=1 they also hold the
# integration tests' lock, so no integration run loads the machine meanwhile.
#
# Common environment (defaults in brackets):
#   BENCH_MB          size of the large layer in MiB [100]
#   BENCH_WORKERS     proxy workers = nginx worker_processes [2]
#   BENCH_TLS13_CIPHERS  the client's TLS 1.3 suites, the same for both
#                     sides ("" = curl's defaults) [TLS_AES_128_GCM_SHA256]
#   BENCH_KEEP=1      keep the work dir
#   BENCH_LOG_LEVEL   the proxies' log_level [notice]
#   BENCH_PROXY_CONF  one more [proxy] line for the proxy (e.g.
#                     tcp_congestion=cubic)
#   BENCH_CACHE_CONF  [cache] lines for the proxy (e.g. keep_mapped=256M)

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DRP_IT_DIR=$(cd "$BENCH_DIR/../tests/integration" && pwd)
# shellcheck source-path=SCRIPTDIR source=../tests/integration/lib.sh
. "$DRP_IT_DIR/lib.sh"

BENCH_MB=${BENCH_MB:-100}
BENCH_WORKERS=${BENCH_WORKERS:-2}
BENCH_TLS13_CIPHERS=${BENCH_TLS13_CIPHERS-TLS_AES_128_GCM_SHA256}
BENCH_LOCK=${BENCH_LOCK:-/tmp/drp-bench.lock}
DRP_IT_LARGE_MB=$BENCH_MB
DRP_IT_KEEP=${BENCH_KEEP:-0}

# Our own hosts replace the integration layout (drp_gen_pki, drp_hosts_file
# and drp_start_registry read this table).
unset DRP_IP
declare -gA DRP_IP=([registry.test]=${BENCH_REGISTRY_IP:-127.0.0.41}
	[cache.test]=${BENCH_NGINX_IP:-127.0.0.42})

CLK_TCK=$(getconf CLK_TCK)

# bench_init BUILD_DIR: root, tools, locks, work dir, PKI, the registry with
# the test images large (one BENCH_MB layer) and small pushed to it.
bench_init()
{
	local build=${1:-}
	if [ "$(id -u)" != 0 ]; then
		echo "the benchmarks need root (they bind 127.0.0.x:443): sudo $0 BUILD_DIR" >&2
		exit 77
	fi
	[ -n "$build" ] || drp_fail "usage: $0 BUILD_DIR"
	DRP_PROXY=${DRP_PROXY:-$build/docker-registry-proxy}
	drp_find_proxy
	drp_require_tools docker-registry nginx skopeo curl openssl python3 sha256sum \
		unshare flock timeout gnutls-cli getconf awk
	exec 8>"$BENCH_LOCK"
	flock -w "${BENCH_LOCK_WAIT:-900}" 8 || drp_fail "another benchmark holds $BENCH_LOCK"
	if [ "${BENCH_IT_LOCK:-0}" = 1 ]; then
		drp_log "waiting for the integration lock $DRP_IT_LOCK"
		drp_lock
	fi
	local ip
	for ip in "${DRP_IP[@]}"; do
		! drp_port_open "$ip" 443 || drp_fail "$ip:443 is in use (set BENCH_REGISTRY_IP/BENCH_NGINX_IP)"
	done
	drp_setup_work
	drp_log "work dir $WORK, proxy $DRP_PROXY"
	drp_gen_pki
	drp_hosts_file
	drp_start_registry open registry.test
	drp_log "building the test images (large layer $BENCH_MB MiB)"
	drp_build_images
	drp_push_direct large registry.test/test/large:v1
	drp_push_direct small registry.test/test/small:v1
	BLOB_SIZE=$(stat -c %s "$WORK/images/large/blobs/sha256/${LARGE_LAYER#sha256:}")
	BLOB_PATH=/v2/test/large/blobs/$LARGE_LAYER
}

# bench_proxy NAME: write $WORK/NAME/proxy.ini (a fresh cache in
# $WORK/NAME/cache, its CA in $WORK/NAME/ca) and start it: PROXY_PID,
# PROXY_URL, PROXY_CA, PROXY_DIR (see drp_start_proxy). BENCH_PROXY_CONF
# (one [proxy] line, e.g. tcp_congestion = cubic) and BENCH_CACHE_CONF
# ([cache] lines) are added.
bench_proxy()
{
	local name=$1 d=$WORK/$1
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
		${BENCH_PROXY_CONF:-}
		[resolve]
		registry.test = ${DRP_IP[registry.test]}:443
		[cache]
		dir = $d/cache
	EOF
	if [ -n "${BENCH_CACHE_CONF:-}" ]; then
		printf '%s\n' "$BENCH_CACHE_CONF" >>"$d/proxy.ini"
	fi
	drp_start_proxy "$name"
}

# bench_stop_proxy: SIGTERM the current proxy; it must exit 0 (drains).
bench_stop_proxy()
{
	drp_unwatch_proxies
	drp_check_proxy "$PROXY_PID" "$PROXY_NAME" >&2 || drp_fail "proxy $PROXY_NAME did not stop cleanly"
	rmdir "$BENCH_CG_V1/drp-bench-$PROXY_PID" "$BENCH_CG_V2/drp-bench-$PROXY_PID" 2>/dev/null || true
}

# bench_cpu_ns PID...: CPU time the processes have used, in nanoseconds:
# the sum over every thread of the scheduler's run time
# (/proc/PID/task/TID/schedstat, field 1), exact where utime + stime count
# 10 ms ticks. Threads that have exited no longer count, so measure
# processes whose threads live across the measurement (the proxy's workers,
# nginx's processes); a process that has gone counts 0.
bench_cpu_ns()
{
	local p f ns rest sum=0
	for p in "$@"; do
		for f in /proc/"$p"/task/*/schedstat; do
			read -r ns rest <"$f" 2>/dev/null || continue
			sum=$((sum + ns))
		done
	done
	echo "$sum"
}

# bench_proc_cpu_ns PID: CPU time of the whole process, threads that have
# exited included, for a process whose threads may come and go during the
# measurement. Exact (nanoseconds) from a cgroup of its own: the first call
# moves the process into drp-bench-PID under the cpuacct hierarchy (v1,
# cpuacct.usage) or else the unified one (v2, cpu.stat usage_usec), and
# every call reads that group's usage, so differences between two calls are
# exact. Where neither can be written, utime + stime of /proc/PID/stat
# (10 ms ticks, coarse against a cold pull's ≈0.2 s).
BENCH_CG_V1=/sys/fs/cgroup/cpuacct
BENCH_CG_V2=/sys/fs/cgroup/unified
[ -f /sys/fs/cgroup/cgroup.controllers ] && BENCH_CG_V2=/sys/fs/cgroup
bench_proc_cpu_ns()
{
	local g line
	for g in "$BENCH_CG_V1/drp-bench-$1" "$BENCH_CG_V2/drp-bench-$1"; do
		[ -d "$g" ] || bench_cg_join "$1" "$g" || continue
		if [ -f "$g/cpuacct.usage" ]; then
			cat "$g/cpuacct.usage"
			return
		fi
		while read -r line; do
			case $line in "usage_usec "*)
				echo $((${line#usage_usec } * 1000))
				return
				;;
			esac
		done <"$g/cpu.stat"
	done
	local u k
	read -r u k <<<"$(bench_ticks "$1")"
	echo $(((u + k) * 1000000000 / $(getconf CLK_TCK)))
}

# bench_server_pids SIDE: the PIDs of the proxy, or of nginx (master and
# workers).
bench_server_pids()
{
	case $1 in
	proxy) echo "$PROXY_PID" ;;
	nginx) drp_tree "$NGINX_PID" ;;
	esac
}

# bench_ticks PID...: "USER SYS", the processes' CPU time in user space
# and in the kernel (utime and stime of /proc/PID/stat, 10 ms ticks,
# threads that have exited included), summed; for the kernel's share of a
# server's CPU, over enough rounds that the ticks add up.
bench_ticks()
{
	local p s rest u=0 k=0
	for p in "$@"; do
		s=$(cat /proc/"$p"/stat 2>/dev/null) || continue
		rest=${s##*) }
		# shellcheck disable=SC2086 # split into fields on purpose
		set -- $rest
		u=$((u + ${12}))
		k=$((k + ${13}))
	done
	echo "$u $k"
}

# bench_cg_join PID DIR: make the cgroup DIR and move the process there
# (all its threads); groups of processes that have gone are removed.
bench_cg_join()
{
	local d
	[ -d "${2%/*}" ] && [ -w "${2%/*}" ] || return 1
	for d in "${2%/*}"/drp-bench-*; do
		[ -d "$d" ] && [ ! -d "/proc/${d##*-}" ] && rmdir "$d" 2>/dev/null
	done
	mkdir "$2" 2>/dev/null || return 1
	if ! echo "$1" >"$2/cgroup.procs" 2>/dev/null ||
		{ [ ! -f "$2/cpuacct.usage" ] && [ ! -f "$2/cpu.stat" ]; }; then
		rmdir "$2" 2>/dev/null
		return 1
	fi
}

# bench_self_child_ticks: CPU of this shell's waited-for children (cutime +
# cstime), read without forking, so it counts only the clients.
bench_self_child_ticks()
{
	local s rest
	read -r s </proc/$$/stat
	rest=${s##*) }
	# shellcheck disable=SC2086
	set -- $rest
	echo $((${14} + ${15}))
}

# bench_now: wall clock in seconds with microseconds, without forking.
bench_now() { echo "$EPOCHREALTIME"; }

# bench_curl_tls: the client's TLS options, the same for every side.
bench_curl_tls()
{
	if [ -n "$BENCH_TLS13_CIPHERS" ]; then
		echo "--tlsv1.3 --tls13-ciphers $BENCH_TLS13_CIPHERS"
	else
		echo "--tlsv1.3"
	fi
}

# bench_cipher CURL-ARGS...: the protocol and cipher curl negotiated with
# the (innermost) TLS server, from its -v output.
bench_cipher()
{
	curl -sS -v -o /dev/null --max-time 30 "$@" 2>&1 |
		sed -n 's/^\* SSL connection using \([^ ]*\) \/ \([^ ]*\).*/\1 \2/p' | tail -n 1
}

# bench_perf_start PID FILE: perf record of PID (every thread) into FILE,
# with BENCH_PERF_ARGS [--call-graph dwarf,8192 -F 499]; bench_perf_stop
# ends it (SIGINT, so that perf writes its file) and waits for it.
BENCH_PERF_PID=
bench_perf_start()
{
	drp_require_tools perf
	# shellcheck disable=SC2086
	drp_bg perf perf record -q ${BENCH_PERF_ARGS:---call-graph dwarf,8192 -F 499} \
		-p "$1" -o "$2"
	BENCH_PERF_PID=$DRP_LAST_PID
	sleep 1 # perf attaches asynchronously
}
bench_perf_stop()
{
	[ -n "$BENCH_PERF_PID" ] || return 0
	kill -INT "$BENCH_PERF_PID" 2>/dev/null || true
	timeout 120 tail --pid="$BENCH_PERF_PID" -f /dev/null || true
	wait "$BENCH_PERF_PID" 2>/dev/null || true
	BENCH_PERF_PID=
}

# bench_idle [SECONDS]: how idle the machine is, in percent of all CPUs,
# over SECONDS (default 2) from /proc/stat, and a note when it is busy:
# other processes then compete with the servers and clients measured, which
# lowers MB/s and raises wall times (CPU per GB much less so).
bench_idle()
{
	local a b
	a=$(head -n 1 /proc/stat)
	sleep "${1:-2}"
	b=$(head -n 1 /proc/stat)
	printf '%s\n%s\n' "$a" "$b" | awk '{
		t = 0; for (i = 2; i <= NF; i++) t += $i
		idle = $5 + $6; T[NR] = t; I[NR] = idle }
		END { p = 100 * (I[2] - I[1]) / (T[2] - T[1])
			printf "%.0f%% idle%s\n", p, p < 80 ? " (BUSY: other processes use the CPUs, numbers disturbed)" : "" }'
}

# median NUMBER...: the median (mean of the middle two for an even count).
median()
{
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) print "nan";
		else if (NR % 2) printf "%.3f\n", v[(NR + 1) / 2];
		else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
