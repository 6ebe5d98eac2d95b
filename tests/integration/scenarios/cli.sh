#!/bin/bash
# SPDX-License-Identifier: MIT
# The command line of docker-registry-proxy(8): -V, -h, -d with -p (the pid
# file goes at exit), [cache] backend = memory in the daemon (hits counted
# at the registry), /metrics and --cache-stats (of the running daemon and
# of a cache directory), and a start without -c: the sysconfdir file when
# it exists, else the embedded defaults.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
# Absolute: the starts without -c run from directories of their own.
DRP_PROXY=$(cd "$(dirname "$DRP_PROXY")" && pwd)/$(basename "$DRP_PROXY")
reg=$(reg_log open)
layer=${SMALL_LAYERS%% *}
layer_size=$(stat -c %s "$WORK/images/small/blobs/sha256/${layer#sha256:}")
blob_url=https://registry.test/v2/test/small/blobs/$layer

# -V: the version configure.ac gives.
ver=$(sed -n 's/^AC_INIT(\[[^]]*\], *\[\([^]]*\)\].*/\1/p' "$DRP_IT_DIR/../../configure.ac")
out=$("$DRP_PROXY" -V)
expect_eq "-V" "docker-registry-proxy $ver" "$out"

# -h: every option, status 0; an unknown option: status != 0.
out=$("$DRP_PROXY" -h)
for o in "-c FILE" "-t" "-d" "-p PIDFILE" "--cache-stats" "--env-config" "-V" "-h"; do
	expect_match "-h names $o" "(^|[[:space:]])$o([[:space:]]|$)" "$out"
done
rc=0
"$DRP_PROXY" --no-such-option >/dev/null 2>"$SCEN/badopt.err" || rc=$?
expect_eq "an unknown option fails" 1 $((rc != 0))
expect_match "an unknown option: usage on stderr" 'usage:' "$(cat "$SCEN/badopt.err")"
sysconf=$(printf '%s\n' "$out" | sed -n 's/.*(default \([^ ]*\) if it exists.*/\1/p')
[ -n "$sysconf" ] || drp_fail "-h does not name the default configuration file"

# -d -p with the memory cache backend.
port=$(drp_free_port)
drp_proxy_conf cli-daemon "$port" "" "backend = memory"
d=$WORK/cli-daemon
pidf=$SCEN/run/drp.pid
mkdir -p "$SCEN/run"
rc=0
timeout 20 "$DRP_PROXY" -d -p "$pidf" -c "$d/proxy.ini" >"$SCEN/daemon.out" 2>&1 || rc=$?
expect_eq "-d returns to the caller" 0 "$rc"
drp_wait "pid file" 10 test -s "$pidf"
pid=$(cat "$pidf")
drp_at_exit "kill -9 $pid 2>/dev/null || true"
drp_alive "$pid" || drp_fail "the pid file names $pid, which is not running"
expect_eq "the daemon is in a session of its own" 1 \
	$(($(ps -o sid= -p "$pid") != $(ps -o sid= -p $$)))
expect_eq "the daemon has no controlling terminal" "?" "$(ps -o tty= -p "$pid" | tr -d ' ')"
expect_eq "the daemon's parent is not the caller" 1 $(($(ps -o ppid= -p "$pid") != $$))
drp_wait "daemon listening" 15 curl -sf --max-time 2 -o /dev/null "http://127.0.0.1:$port/healthz"

PROXY_URL=http://127.0.0.1:$port PROXY_CA=$d/ca/ca.crt PROXY_DIR=$d
mark=$(log_mark "$reg")
for i in 1 2; do
	amk=$(amark)
	code=$(pcurl -o "$SCEN/blob$i" -w '%{http_code}' "$blob_url")
	expect_eq "memory backend: GET $i status" 200 "$code"
	expect_file_digest "memory backend: GET $i bytes" "$SCEN/blob$i" "$layer"
	anext '$6' "$amk" registry.test:443 GET "/v2/test/small/blobs/$layer" >/dev/null
done
expect_eq "memory backend: result of the second GET" "200 HIT" \
	"$(anext '$6, $11' "$amk" registry.test:443 GET "/v2/test/small/blobs/$layer")"
expect_eq "memory backend: blob GETs at the registry" 1 \
	"$(count_since "$reg" "$mark" "$(req_pat GET "/v2/test/small/blobs/$layer")")"
expect_eq "memory backend: files under the cache dir" 0 "$(find "$d/cache" -type f 2>/dev/null | wc -l)"

# /metrics and --cache-stats of the running daemon.
metrics=$(curl -sf --max-time 5 "http://127.0.0.1:$port/metrics")
rq='drp_requests_total\{registry="registry\.test",method="get"'
expect_match "/metrics HIT" "$rq,result=\"hit\",code=\"2xx\"\\} 1\$" "$metrics"
expect_match "/metrics MISS" "$rq,result=\"miss\",code=\"2xx\"\\} 1\$" "$metrics"
expect_match "/metrics objects" '^drp_cache_objects 1$' "$metrics"
expect_match "/metrics bytes" "^drp_cache_size_bytes $layer_size\$" "$metrics"
stats=$("$DRP_PROXY" --cache-stats -c "$d/proxy.ini")
expect_match "--cache-stats: of the running proxy" 'cache statistics of the running proxy' "$stats"
expect_match "--cache-stats: objects" '^  objects +1$' "$stats"
expect_match "--cache-stats: hit and miss" ' hit 1, miss 1, ' "$stats"

# SIGTERM: the daemon exits and removes its pid file.
kill -TERM "$pid"
drp_wait "daemon exit" 20 bash -c "! kill -0 $pid 2>/dev/null"
expect_eq "pid file removed at exit" no "$([ -e "$pidf" ] && echo yes || echo no)"
rc=0
"$DRP_PROXY" --cache-stats -c "$d/proxy.ini" >"$SCEN/stats-mem.out" 2>&1 || rc=$?
expect_eq "--cache-stats, memory backend, no daemon: status" 1 "$rc"
expect_match "--cache-stats, memory backend, no daemon: says why" 'keeps nothing on disk' "$(cat "$SCEN/stats-mem.out")"

# --cache-stats of an fs cache directory with no daemon running.
drp_proxy_conf cli-fs "$(drp_free_port)"
drp_start_proxy cli-fs
code=$(pcurl -o "$SCEN/blob-fs" -w '%{http_code}' "$blob_url")
expect_eq "fs backend: status" 200 "$code"
drp_wait "blob in the fs cache" 10 cache_has_content "$SCEN/blob-fs"
drp_stop "$PROXY_PID" 15 || drp_fail "proxy cli-fs did not stop on SIGTERM"
drp_unwatch_proxies
stats=$("$DRP_PROXY" --cache-stats -c "$WORK/cli-fs/proxy.ini")
expect_match "--cache-stats of the directory" 'no running proxy answered' "$stats"
expect_match "--cache-stats of the directory: objects" 'objects 1$' "$stats"
expect_match "--cache-stats of the directory: bytes" "bytes $layer_size\$" "$stats"

# Without -c: the sysconfdir file when it exists...
made=
if [ ! -e "$sysconf" ]; then
	mkdir -p "$(dirname "$sysconf")"
	made=$sysconf
	drp_at_exit "rm -f '$sysconf'; rmdir '$(dirname "$sysconf")' 2>/dev/null || true"
	port=$(drp_free_port)
	drp_proxy_conf cli-sysconf "$port"
	cp "$WORK/cli-sysconf/proxy.ini" "$sysconf"
	mkdir -p "$SCEN/sysconf-cwd"
	cd "$SCEN/sysconf-cwd"
	drp_bg nocfg-sysconf "$DRP_PROXY"
	spid=$DRP_LAST_PID
	cd - >/dev/null
	drp_wait_started nocfg-sysconf "$spid" 30 curl -sf --max-time 2 -o /dev/null "http://127.0.0.1:$port/healthz"
	expect_eq "without -c: the CA named by $sysconf" yes \
		"$([ -s "$WORK/cli-sysconf/ca/ca.crt" ] && echo yes || echo no)"
	drp_stop "$spid" 15 || drp_fail "the proxy started without -c did not stop on SIGTERM"
	rm -f "$sysconf"
else
	drp_log "$sysconf exists on this machine: the embedded defaults are not tested"
fi

# ... else the embedded defaults: [::]:3128 (dual-stack), ./ca, ./cache.
if [ -z "$made" ] && [ -e "$sysconf" ]; then exit 0; fi
drp_port_open 127.0.0.1 3128 && drp_fail "port 3128 is taken: the embedded defaults cannot be tested"
mkdir -p "$SCEN/defaults-cwd"
cd "$SCEN/defaults-cwd"
drp_bg nocfg-defaults "$DRP_PROXY"
dpid=$DRP_LAST_PID
cd - >/dev/null
drp_wait_started nocfg-defaults "$dpid" 30 curl -sf --max-time 2 -o "$SCEN/defaults-ca.crt" http://127.0.0.1:3128/ca.crt
expect_eq "embedded defaults: ./ca/ca.crt is the CA served" \
	"$(sha256sum <"$SCEN/defaults-cwd/ca/ca.crt")" "$(sha256sum <"$SCEN/defaults-ca.crt")"
expect_eq "embedded defaults: ./cache" yes "$([ -d "$SCEN/defaults-cwd/cache" ] && echo yes || echo no)"
# Dual-stack: ss shows a v6 socket that takes IPv4 as *:3128 (or [::]:3128),
# and 127.0.0.1 reached it above (this machine has IPv6).
expect_match "embedded defaults: listening on [::]:3128" '(\*|\[::\]):3128' "$(ss -ltnH 'sport = :3128')"
drp_stop "$dpid" 15 || drp_fail "the proxy with the embedded defaults did not stop on SIGTERM"
