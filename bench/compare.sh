#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Two builds of the proxy side by side: serve.sh and cold.sh run RUNS
# times for each build, paired (A then B, then B then A, ...), so that
# both see the same machine. Prints, per build, the median over the runs
# of what each script reports for the proxy:
#   serve.sh: server CPU seconds per GB served, 1 client and N clients
#   cold.sh:  the proxy's CPU seconds per cold pull (skopeo), and the
#             cold pull's median wall time through the proxy
#   cold.sh:  the same for one cold curl GET of the large layer
# and B's change against A's. nginx's figures in the same runs are
# printed too: they show how much the machine itself moved.
#
# usage: sudo bench/compare.sh BUILD_A BUILD_B [RUNS]
# env:   as serve.sh and cold.sh (BENCH_MB, BENCH_ROUNDS, BENCH_CLIENTS, ...);
#        BENCH_ONLY=serve|cold runs one of the two.
#        BENCH_A_ENV, BENCH_B_ENV: "VAR=value ..." for A's or B's runs only
#        (e.g. BENCH_B_ENV='BENCH_CACHE_CONF=keep_mapped=256M' compares a
#        setting; A and B may then be the same build).
#        BENCH_IT_LOCK=1 holds the integration tests' lock for the whole
#        comparison (not per run: an integration run between two runs
#        would load the machine for one build and not the other).
set -euo pipefail

A=$(cd "${1:?usage: bench/compare.sh BUILD_A BUILD_B [RUNS]}" && pwd)
B=$(cd "${2:?usage: bench/compare.sh BUILD_A BUILD_B [RUNS]}" && pwd)
RUNS=${3:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(mktemp -d /tmp/drp-compare.XXXXXX)
ONLY=${BENCH_ONLY:-}

if [ "${BENCH_IT_LOCK:-0}" = 1 ]; then
	lock=${DRP_IT_LOCK:-/tmp/drp-integration.lock}
	echo "[$(date +%T)] waiting for the integration lock $lock" >&2
	exec 9>"$lock"
	flock -w "${DRP_IT_LOCK_WAIT:-900}" 9 || {
		echo "compare: another integration run holds $lock" >&2
		exit 1
	}
fi

run_one()
{ # run_one SCRIPT BUILD TAG I
	local log="$OUT/$1.$3.$4.log" extra
	if [ "$3" = A ]; then extra=${BENCH_A_ENV:-}; else extra=${BENCH_B_ENV:-}; fi
	# The scripts inherit the lock (fd 9): they must not take it again.
	# shellcheck disable=SC2086 # extra is a list of assignments
	env $extra DRP_PROXY="$2/docker-registry-proxy" BENCH_IT_LOCK=0 \
		bash "$HERE/$1.sh" "$2" >"$log" 2>&1 || {
		echo "compare: $1.sh failed for $2 (log $log)" >&2
		exit 1
	}
}

for i in $(seq 1 "$RUNS"); do
	if [ $((i % 2)) -eq 1 ]; then order="A B"; else order="B A"; fi
	for tag in $order; do
		if [ "$tag" = A ]; then build=$A; else build=$B; fi
		echo "[$(date +%T)] run $i/$RUNS: $tag" >&2
		[ "$ONLY" = cold ] || run_one serve "$build" "$tag" "$i"
		[ "$ONLY" = serve ] || run_one cold "$build" "$tag" "$i"
	done
done

median()
{
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "nan"; exit }
		print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# values TAG SCRIPT AWK-PROGRAM: one number per run's log
values()
{
	local f
	for f in "$OUT/$2.$1".*.log; do
		awk "$3" "$f"
	done
}

# serve.sh's rows: "docker-registry-proxy N rounds MB/s range srv-s/GB ..."
# and "nginx proxy_cache N ..." (a two-word label).
serve_proxy='$1 == "docker-registry-proxy" && $2 == N { print $6 }'
serve_nginx='$1 == "nginx" && $3 == N { print $7 }'
# cold.sh's row: "skopeo copy large+small DIRECT | PROXY OVH CPU | NGINX OVH CPU"
cold_cpu='/^skopeo copy large\+small/ { print $8 }'
cold_wall='/^skopeo copy large\+small/ { print $6 }'
cold_ngx='/^skopeo copy large\+small/ { print $12 }'
# "curl GET of the large layer DIRECT | PROXY OVH CPU | NGINX OVH CPU"
curl_cpu='/^curl GET of the large layer/ { print $11 }'
curl_wall='/^curl GET of the large layer/ { print $9 }'
curl_ngx='/^curl GET of the large layer/ { print $15 }'
curl_ngx_wall='/^curl GET of the large layer/ { print $13 }'

line()
{ # line LABEL A-VALUES B-VALUES
	local a b
	a=$(printf '%s\n' "$2" | median)
	b=$(printf '%s\n' "$3" | median)
	awk -v l="$1" -v a="$a" -v b="$b" 'BEGIN {
		printf "%-44s %10.3f %10.3f %8.1f%%\n", l, a, b, (a > 0 ? 100 * (b - a) / a : 0) }'
}

echo
echo "== $RUNS paired runs each; A = $A, B = $B (logs in $OUT)"
printf '%-44s %10s %10s %9s\n' "median of the runs" A B "B vs A"
if [ "$ONLY" != cold ]; then
	logs=("$OUT"/serve.A.*.log)
	clients=$(awk '$1 == "docker-registry-proxy" { n = $2 } END { print n }' "${logs[0]}")
	for n in 1 "$clients"; do
		prog=${serve_proxy//N/$n}
		line "serve: proxy srv s/GB, $n client(s)" "$(values A serve "$prog")" "$(values B serve "$prog")"
		prog=${serve_nginx//N/$n}
		line "serve: nginx srv s/GB, $n client(s)" "$(values A serve "$prog")" "$(values B serve "$prog")"
	done
fi
if [ "$ONLY" != serve ]; then
	line "cold: proxy CPU s per skopeo pull" "$(values A cold "$cold_cpu")" "$(values B cold "$cold_cpu")"
	line "cold: skopeo pull through the proxy, wall s" "$(values A cold "$cold_wall")" "$(values B cold "$cold_wall")"
	line "cold: nginx CPU s per skopeo pull" "$(values A cold "$cold_ngx")" "$(values B cold "$cold_ngx")"
	line "cold: proxy CPU s per curl GET" "$(values A cold "$curl_cpu")" "$(values B cold "$curl_cpu")"
	line "cold: curl GET through the proxy, wall s" "$(values A cold "$curl_wall")" "$(values B cold "$curl_wall")"
	line "cold: nginx CPU s per curl GET" "$(values A cold "$curl_ngx")" "$(values B cold "$curl_ngx")"
	line "cold: curl GET through nginx, wall s" "$(values A cold "$curl_ngx_wall")" "$(values B cold "$curl_ngx_wall")"
fi
