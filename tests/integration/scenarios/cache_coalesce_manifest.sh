#!/bin/bash
# SPDX-License-Identifier: MIT
# Concurrent cold manifest requests: one upstream GET per key, every
# waiter gets the leader's exact bytes. The fake upstream (bad.test)
# holds test/hold/manifests/* and test/holderr/manifests/* while
# $WORK/hold exists; each round releases it only once every client's
# request is at the proxy (arrived upstream, or counted as a coalesced
# waiter in /metrics), so the overlap is certain, not a matter of timing.
#   - 16 clients (14 GET, 2 HEAD) for one cold tag: 1 upstream GET;
#   - 16 clients for one cold digest: 1 upstream GET;
#   - 8 + 8 clients for one tag with two different Accept headers:
#     2 upstream GETs, each group its own manifest;
#   - 16 clients for a tag the upstream answers 404: 1 upstream GET,
#     every client the same 404;
#   - the client that started the fetch leaves: the others still get it;
#   - a client's own Authorization is not shared with clients without it.
# Counts come from the upstream's own log, not from X-Cache.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_start_fakeupstream 10000000
DRP_IT_REGISTRIES="registry.test bad.test" drp_proxy_conf cache-mcoal "$(drp_free_port)"
drp_start_proxy cache-mcoal
fake=$WORK/logs/fake.out
gate=$WORK/hold
rm -f "$gate"
drp_at_exit "rm -f $gate"

DOCKER_T=application/vnd.docker.distribution.manifest.v2+json
OCI_T=application/vnd.oci.image.manifest.v1+json
# The fake's two manifests (fakeupstream.py V2 and OCI).
V2='{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","layers":[]}'
OCI='{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}'
v2_digest=sha256:$(printf '%s' "$V2" | sha256sum | cut -c1-64)
oci_digest=sha256:$(printf '%s' "$OCI" | sha256sum | cut -c1-64)
N=16

# The proxy's coalesced manifest requests so far (0 where it has none).
coalesced()
{
	curl -s --max-time 5 "$PROXY_URL/metrics" |
		awk '$1 == "drp_manifest_coalesced_total" { v = $2 } END { print v + 0 }'
}

# wait_at_proxy PATH MARK BASE N: until N requests for PATH are at the
# proxy: arrived upstream since MARK, or waiting on one that did (the
# metric above BASE). Bounded: a lost request fails the counts later.
wait_at_proxy()
{
	local i=0 a c
	while [ $i -lt 300 ]; do
		a=$(count_since "$fake" "$2" "hold: GET $1")
		c=$(($(coalesced) - $3))
		[ $((a + c)) -ge "$4" ] && return 0
		sleep 0.1
		i=$((i + 1))
	done
	drp_log "only $a upstream arrival(s) and $c waiter(s) of $4 for $1"
}

# client NAME ARGS...: one curl through the proxy in the background; its
# body, head and status in $SCEN/NAME.{body,head,code}.
pids=()
client()
{
	local n=$1
	shift
	PCURL_TIMEOUT=${PCURL_TIMEOUT:-60} pcurl -o "$SCEN/$n.body" -D "$SCEN/$n.head" \
		-w '%{http_code}' "$@" >"$SCEN/$n.code" &
	pids+=($!)
}
wait_clients()
{
	local p rc=0
	for p in "${pids[@]}"; do wait "$p" || rc=$?; done
	pids=()
	expect_eq "$1: every client exited 0" 0 "$rc"
}
# check_client NAME WHAT STATUS DIGEST BODY-FILE: status, the exact bytes,
# Docker-Content-Digest.
check_client()
{
	expect_eq "$2: status" "$3" "$(cat "$SCEN/$1.code")"
	expect_eq "$2: bytes" "$(sha256sum <"$5" | cut -c1-64)" "$(sha256sum <"$SCEN/$1.body" | cut -c1-64)"
	if [ -n "$4" ]; then
		expect_eq "$2: Docker-Content-Digest" "$4" "$(hdr Docker-Content-Digest <"$SCEN/$1.head")"
	fi
}
upstream_gets()
{
	wait_log "$fake" "$2" "$(req_pat GET "$1")" 1 5
	count_since "$fake" "$2" "$(req_pat GET "$1")"
}
printf '%s' "$V2" >"$SCEN/v2.json"
printf '%s' "$OCI" >"$SCEN/oci.json"
printf '%s' '{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}' >"$SCEN/404.json"

# ---- one cold tag, 14 GETs and 2 HEADs at once
path=/v2/test/hold/manifests/t1
url=https://bad.test$path
touch "$gate"
mark=$(log_mark "$fake")
amk=$(amark)
base=$(coalesced)
for i in $(seq 1 14); do client "tag.$i" -H "Accept: $DOCKER_T" "$url"; done
for i in 15 16; do client "tag.$i" -I -H "Accept: $DOCKER_T" "$url"; done
wait_at_proxy "$path" "$mark" "$base" $N
rm -f "$gate"
wait_clients "tag"
expect_eq "tag: upstream GETs" 1 "$(upstream_gets "$path" "$mark")"
for i in $(seq 1 14); do check_client "tag.$i" "tag client $i" 200 "$v2_digest" "$SCEN/v2.json"; done
for i in 15 16; do
	# (curl -I writes the head as its output: no body to compare)
	expect_eq "tag HEAD client $i: status" 200 "$(cat "$SCEN/tag.$i.code")"
	expect_eq "tag HEAD client $i: Docker-Content-Digest" "$v2_digest" "$(hdr Docker-Content-Digest <"$SCEN/tag.$i.head")"
	expect_eq "tag HEAD client $i: Content-Length" "${#V2}" "$(hdr Content-Length <"$SCEN/tag.$i.head")"
done
expect_eq "tag: coalesced manifest requests" $((N - 1)) $(($(coalesced) - base))
anext_n 14 "$amk" bad.test:443 GET "$path" >"$SCEN/alog"
anext_n 2 "$amk" bad.test:443 HEAD "$path" >>"$SCEN/alog"
expect_eq "tag: access-log MISS lines" 1 "$(awk '$11 == "MISS"' "$SCEN/alog" | wc -l)"
expect_eq "tag: access-log COALESCED lines" $((N - 1)) "$(awk '$11 == "COALESCED"' "$SCEN/alog" | wc -l)"

# ---- one cold digest (the OCI manifest: nothing fetched it yet)
path=/v2/test/hold/manifests/$oci_digest
url=https://bad.test$path
touch "$gate"
mark=$(log_mark "$fake")
base=$(coalesced)
for i in $(seq 1 $N); do client "dig.$i" -H "Accept: $OCI_T" "$url"; done
wait_at_proxy "$path" "$mark" "$base" $N
rm -f "$gate"
wait_clients "digest"
expect_eq "digest: upstream GETs" 1 "$(upstream_gets "$path" "$mark")"
for i in $(seq 1 $N); do check_client "dig.$i" "digest client $i" 200 "$oci_digest" "$SCEN/oci.json"; done

# ---- one cold tag, two Accept headers: two fetches, each its answer
path=/v2/test/hold/manifests/t3
url=https://bad.test$path
touch "$gate"
mark=$(log_mark "$fake")
base=$(coalesced)
for i in $(seq 1 8); do client "acc.d$i" -H "Accept: $DOCKER_T" "$url"; done
for i in $(seq 1 8); do client "acc.o$i" -H "Accept: $OCI_T" "$url"; done
wait_at_proxy "$path" "$mark" "$base" $N
rm -f "$gate"
wait_clients "accept"
expect_eq "accept: upstream GETs" 2 "$(upstream_gets "$path" "$mark")"
for i in $(seq 1 8); do
	check_client "acc.d$i" "Docker Accept client $i" 200 "$v2_digest" "$SCEN/v2.json"
	check_client "acc.o$i" "OCI Accept client $i" 200 "$oci_digest" "$SCEN/oci.json"
done

# ---- an error answer: every waiter gets the same 404, one upstream GET
path=/v2/test/holderr/manifests/t4
url=https://bad.test$path
touch "$gate"
mark=$(log_mark "$fake")
base=$(coalesced)
for i in $(seq 1 $N); do client "err.$i" -H "Accept: $DOCKER_T" "$url"; done
wait_at_proxy "$path" "$mark" "$base" $N
rm -f "$gate"
wait_clients "error"
expect_eq "error: upstream GETs" 1 "$(upstream_gets "$path" "$mark")"
for i in $(seq 1 $N); do check_client "err.$i" "error client $i" 404 "" "$SCEN/404.json"; done

# ---- the client that started the fetch leaves; the others still get it
path=/v2/test/hold/manifests/t5
url=https://bad.test$path
touch "$gate"
mark=$(log_mark "$fake")
base=$(coalesced)
PCURL_TIMEOUT=2 pcurl -o /dev/null -H "Accept: $DOCKER_T" "$url" 2>/dev/null &
first=$!
wait_log "$fake" "$mark" "hold: GET $path" 1 10
for i in $(seq 2 $N); do client "leave.$i" -H "Accept: $DOCKER_T" "$url"; done
wait_at_proxy "$path" "$mark" "$base" $N
wait $first || true # gone (timed out) before the upstream answers
rm -f "$gate"
wait_clients "leader leaves"
expect_eq "leader leaves: upstream GETs" 1 "$(upstream_gets "$path" "$mark")"
for i in $(seq 2 $N); do check_client "leave.$i" "client $i after the leader left" 200 "$v2_digest" "$SCEN/v2.json"; done

# ---- a client's own credentials go upstream: never shared with others
path=/v2/test/hold/manifests/t6
url=https://bad.test$path
touch "$gate"
mark=$(log_mark "$fake")
base=$(coalesced)
for i in $(seq 1 4); do client "cred.a$i" -H "Accept: $DOCKER_T" -H "Authorization: Basic dXNlcjpwYXNz" "$url"; done
for i in $(seq 1 4); do client "cred.n$i" -H "Accept: $DOCKER_T" "$url"; done
wait_at_proxy "$path" "$mark" "$base" 8
rm -f "$gate"
wait_clients "credentials"
expect_eq "credentials: upstream GETs" 2 "$(upstream_gets "$path" "$mark")"
for i in $(seq 1 4); do
	check_client "cred.a$i" "client $i with credentials" 200 "$v2_digest" "$SCEN/v2.json"
	check_client "cred.n$i" "client $i without" 200 "$v2_digest" "$SCEN/v2.json"
done
