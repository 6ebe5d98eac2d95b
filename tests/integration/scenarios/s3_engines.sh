#!/bin/bash
# SPDX-License-Identifier: MIT
# The engines of the shared cache, without the proxy (ceph_lib.sh): a
# one-node Ceph cluster whose radosgw does what the S3 backend will rely
# on (PUT/GET byte for byte, ranged GET, path and virtual-hosted
# addressing over TLS, signatures checked, a conditional PUT that refuses
# to overwrite, multipart uploads invisible until completed), that
# accepts what the proxy's own SigV4 code (src/cache/s3sig.c) signs, and a
# Redis that does the lease protocol of docs/ARCHITECTURE.md (SET NX PX,
# compare-and-extend, expiry by its own TTL). If this fails, the S3 and
# fleet scenarios' failures say nothing about the proxy.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$DRP_IT_DIR/ceph_lib.sh"
drp_scenario_init
drp_require_tools curl python3 sha256sum

ceph_start
redis_start
# Start-up is part of every S3 scenario's time: keep it short (the
# paxos interval in ceph_conf is what makes it ~2 s instead of ~11).
expect_le "ceph start-up seconds" 30 "${CEPH_START_SECONDS%.*}"

B=drp-engines
s3_mkbucket $B

# keystream NAME BYTES: deterministic incompressible content in $SCEN/NAME.
keystream()
{
	python3 -c 'import random,sys; sys.stdout.buffer.write(random.Random(sys.argv[1]).randbytes(int(sys.argv[2])))' \
		"$1" "$2" >"$SCEN/$1"
}
sha() { echo "sha256:$(sha256sum <"$1" | cut -c1-64)"; }
# code ARGS...: s3curl's HTTP status only (body to $SCEN/body).
code() { s3curl -o "$SCEN/body" -w '%{http_code}' "$@"; }

# ---- 1. PUT and GET, byte for byte; HEAD; ranged GET; 404.
keystream obj 1048577
K=blobs/sha256/$(sha256sum <"$SCEN/obj" | cut -c1-64)
expect_eq "PUT $K" 200 "$(code -T "$SCEN/obj" "$S3_HTTP/$B/$K")"
expect_eq "GET $K" 200 "$(s3curl -o "$SCEN/got" -w '%{http_code}' "$S3_HTTP/$B/$K")"
expect_file_digest "GET $K body" "$SCEN/got" "$(sha "$SCEN/obj")"
expect_eq "HEAD Content-Length" 1048577 \
	"$(s3curl -I "$S3_HTTP/$B/$K" | hdr Content-Length)"
expect_eq "ranged GET status" 206 \
	"$(s3curl -o "$SCEN/range" -w '%{http_code}' -H 'Range: bytes=1000-1999' "$S3_HTTP/$B/$K")"
dd if="$SCEN/obj" of="$SCEN/range.want" bs=1000 skip=1 count=1 status=none
expect_file_digest "ranged GET body" "$SCEN/range" "$(sha "$SCEN/range.want")"
expect_eq "GET of a missing key" 404 "$(code "$S3_HTTP/$B/blobs/sha256/missing")"
expect_match "404 body" '<Code>NoSuchKey</Code>' "$(cat "$SCEN/body")"

# ---- 2. Signatures are checked: a wrong secret is refused.
expect_eq "GET with a wrong secret" 403 \
	"$(S3_SECRET_KEY=wrong-$S3_SECRET_KEY code "$S3_HTTP/$B/$K")"
expect_match "403 body" '<Code>SignatureDoesNotMatch</Code>' "$(cat "$SCEN/body")"

# ---- 3. TLS, path-style and virtual-hosted (BUCKET.s3.test), trusting
# only the test CA.
tls=(--cacert "$TEST_CA" --capath "$WORK/empty-certs"
	--resolve "s3.test:443:$CEPH_IP" --resolve "$B.s3.test:443:$CEPH_IP")
expect_eq "GET over TLS, path-style" 200 \
	"$(s3curl "${tls[@]}" -o "$SCEN/got-tls" -w '%{http_code}' "$S3_HTTPS/$B/$K")"
expect_file_digest "TLS path-style body" "$SCEN/got-tls" "$(sha "$SCEN/obj")"
expect_eq "GET over TLS, virtual-hosted" 200 \
	"$(s3curl "${tls[@]}" -o "$SCEN/got-vh" -w '%{http_code}' "https://$B.s3.test/$K")"
expect_file_digest "TLS virtual-hosted body" "$SCEN/got-vh" "$(sha "$SCEN/obj")"

# ---- 4. Conditional PUT (If-None-Match: *): the first writer wins, a
# second gets 412 and the object keeps the first writer's bytes.
keystream other 4096
expect_eq "conditional PUT over an existing key" 412 \
	"$(code -T "$SCEN/other" -H 'If-None-Match: *' "$S3_HTTP/$B/$K")"
s3curl -o "$SCEN/got2" "$S3_HTTP/$B/$K"
expect_file_digest "object after the refused PUT" "$SCEN/got2" "$(sha "$SCEN/obj")"
expect_eq "conditional PUT of a new key" 200 \
	"$(code -T "$SCEN/other" -H 'If-None-Match: *' "$S3_HTTP/$B/tags/new")"
expect_eq "the same conditional PUT again" 412 \
	"$(code -T "$SCEN/obj" -H 'If-None-Match: *' "$S3_HTTP/$B/tags/new")"

# ---- 5. Multipart upload: parts of >= 5 MiB but the last; the object
# does not exist until the upload is completed; an aborted upload
# leaves nothing.
keystream part1 $((5 * 1024 * 1024))
keystream part2 12345
cat "$SCEN/part1" "$SCEN/part2" >"$SCEN/whole"
M=blobs/sha256/$(sha256sum <"$SCEN/whole" | cut -c1-64)
expect_eq "initiate multipart" 200 "$(code -X POST "$S3_HTTP/$B/$M?uploads=")"
U=$(sed -n 's:.*<UploadId>\([^<]*\)</UploadId>.*:\1:p' "$SCEN/body")
expect_match "UploadId" '^[^&?=/ ]+$' "$U"
etags=()
for n in 1 2; do
	expect_eq "upload part $n" 200 "$(s3curl -D "$SCEN/part$n.h" -o /dev/null -w '%{http_code}' \
		-T "$SCEN/part$n" "$S3_HTTP/$B/$M?partNumber=$n&uploadId=$U")"
	etags+=("$(hdr ETag <"$SCEN/part$n.h")")
done
expect_eq "GET before the upload completed" 404 "$(code "$S3_HTTP/$B/$M")"
expect_eq "list in-progress uploads" 200 "$(code "$S3_HTTP/$B?uploads=")"
expect_match "the upload is listed" "<UploadId>$U</UploadId>" "$(cat "$SCEN/body")"
printf '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>%s</ETag></Part><Part><PartNumber>2</PartNumber><ETag>%s</ETag></Part></CompleteMultipartUpload>' \
	"${etags[0]}" "${etags[1]}" >"$SCEN/complete.xml"
expect_eq "complete multipart" 200 \
	"$(code -X POST --data-binary "@$SCEN/complete.xml" "$S3_HTTP/$B/$M?uploadId=$U")"
expect_match "complete result" '<CompleteMultipartUploadResult' "$(cat "$SCEN/body")"
expect_eq "GET after completion" 200 "$(s3curl -o "$SCEN/got-mp" -w '%{http_code}' "$S3_HTTP/$B/$M")"
expect_file_digest "multipart object" "$SCEN/got-mp" "$(sha "$SCEN/whole")"

expect_eq "initiate a second upload" 200 "$(code -X POST "$S3_HTTP/$B/aborted?uploads=")"
U2=$(sed -n 's:.*<UploadId>\([^<]*\)</UploadId>.*:\1:p' "$SCEN/body")
expect_eq "its part" 200 "$(code -T "$SCEN/part2" "$S3_HTTP/$B/aborted?partNumber=1&uploadId=$U2")"
expect_eq "abort it" 204 "$(code -X DELETE "$S3_HTTP/$B/aborted?uploadId=$U2")"
expect_eq "list uploads after the abort" 200 "$(code "$S3_HTTP/$B?uploads=")"
expect_no_match "no upload left" '<Upload>' "$(cat "$SCEN/body")"
expect_eq "GET of the aborted key" 404 "$(code "$S3_HTTP/$B/aborted")"

# radosgw's own log has a line per request (what later scenarios count):
# the PUT of $K that stored it and the conditional one it refused.
wait_log "$(rgw_log)" 0 "\"PUT /$B/$K HTTP/1.1\" 412" 1 10
expect_eq "PUTs of $K in radosgw's log" 2 "$(count_since "$(rgw_log)" 0 "\"PUT /$B/$K HTTP/1.1\"")"

# ---- 6. The proxy's own signer (src/cache/s3sig.c, through the
# drp-s3sign command): radosgw accepts what it signs, path-style and
# virtual-hosted, signed and unsigned payloads, multipart query strings,
# and refuses a body that does not match its signed hash.
DRP_S3SIGN=${DRP_S3SIGN:-$(dirname "$DRP_PROXY")/tests/integration/drp-s3sign}
[ -x "$DRP_S3SIGN" ] || drp_fail "$DRP_S3SIGN not built (make)"
export S3_ACCESS_KEY S3_SECRET_KEY S3_REGION
# ssend ARGS... -- CURL-ARGS...: sign with drp-s3sign ARGS, send with curl
# (headers exactly as signed), print the status; body in $SCEN/body.
ssend()
{
	local sargs=()
	while [ "$1" != -- ]; do
		sargs+=("$1")
		shift
	done
	shift
	"$DRP_S3SIGN" "${sargs[@]}" >"$SCEN/signed" || drp_fail "drp-s3sign ${sargs[*]} failed"
	tail -n +2 "$SCEN/signed" >"$SCEN/signed.h"
	curl -sS --max-time 60 "${tls[@]}" -H @"$SCEN/signed.h" -o "$SCEN/body" \
		-w '%{http_code}' "$@" "$(head -n 1 "$SCEN/signed")"
}
keystream own 300001
dd if="$SCEN/own" of="$SCEN/range.want.own" bs=1000 skip=1 count=1 status=none
O=blobs/sha256/$(sha256sum <"$SCEN/own" | cut -c1-64)
expect_eq "own signer: PUT, unsigned payload, path-style" 200 \
	"$(ssend -u PUT "$S3_HTTP" $B "$O" -- -T "$SCEN/own")"
expect_eq "own signer: GET, path-style" 200 "$(ssend GET "$S3_HTTP" $B "$O" --)"
expect_file_digest "own signer: GET body" "$SCEN/body" "$(sha "$SCEN/own")"
expect_eq "own signer: PUT, signed payload, virtual-hosted over TLS" 200 \
	"$(ssend -a virtual -b "$SCEN/own" -H 'If-None-Match: *' PUT "$S3_HTTPS" $B "v/$O" -- -T "$SCEN/own")"
expect_eq "own signer: GET, virtual-hosted over TLS, ranged" 206 \
	"$(ssend -a virtual -H 'Range: bytes=1000-1999' GET "$S3_HTTPS" $B "v/$O" --)"
expect_file_digest "own signer: ranged body" "$SCEN/body" "$(sha "$SCEN/range.want.own")"
expect_eq "own signer: a body that is not the signed one" 400 \
	"$(ssend -b "$SCEN/own" PUT "$S3_HTTP" $B "$O.x" -- -T "$SCEN/other")"
expect_match "its error" '<Code>XAmzContentSHA256Mismatch</Code>' "$(cat "$SCEN/body")"
"$DRP_S3SIGN" GET "$S3_HTTP" $B "$O" >"$SCEN/signed"
tail -n +2 "$SCEN/signed" >"$SCEN/signed.h"
expect_eq "own signer: a GET's signature replayed for another key" 403 \
	"$(curl -sS -H @"$SCEN/signed.h" -o "$SCEN/body" -w '%{http_code}' "$(head -n 1 "$SCEN/signed").y")"
expect_match "its error" '<Code>SignatureDoesNotMatch</Code>' "$(cat "$SCEN/body")"
expect_eq "own signer: initiate multipart (?uploads)" 200 \
	"$(ssend -q uploads POST "$S3_HTTP" $B "mp/$M" -- -X POST)"
U3=$(sed -n 's:.*<UploadId>\([^<]*\)</UploadId>.*:\1:p' "$SCEN/body")
etags=()
for n in 1 2; do
	expect_eq "own signer: part $n (signed payload)" 200 \
		"$(ssend -b "$SCEN/part$n" -q partNumber=$n -q "uploadId=$U3" PUT "$S3_HTTP" $B "mp/$M" -- \
			-D "$SCEN/own$n.h" -T "$SCEN/part$n")"
	etags+=("$(hdr ETag <"$SCEN/own$n.h")")
done
printf '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>%s</ETag></Part><Part><PartNumber>2</PartNumber><ETag>%s</ETag></Part></CompleteMultipartUpload>' \
	"${etags[0]}" "${etags[1]}" >"$SCEN/complete-own.xml"
expect_eq "own signer: complete" 200 \
	"$(ssend -b "$SCEN/complete-own.xml" -q "uploadId=$U3" POST "$S3_HTTP" $B "mp/$M" -- \
		--data-binary "@$SCEN/complete-own.xml")"
expect_eq "own signer: GET the multipart object" 200 "$(ssend GET "$S3_HTTP" $B "mp/$M" --)"
expect_file_digest "own signer: multipart object" "$SCEN/body" "$(sha "$SCEN/whole")"

# ---- 6b. The proxy's own S3 client (src/upstream/s3.c over its HTTP
# client, through the drp-s3client command): an endpoint on loopback by
# IP literal (the configured store is exempt from the address policy),
# and s3.test over TLS trusting the test CA through [resolve]; a small
# object by one conditional PUT, a large one by a multipart upload whose
# parts go up while the file is still being announced, ranged and whole
# GETs byte for byte; an aborted upload and a left one (a killed fill)
# leave nothing visible, and the sweep aborts the left one by the
# store's clock.
DRP_S3CLIENT=${DRP_S3CLIENT:-$(dirname "$DRP_PROXY")/tests/integration/drp-s3client}
[ -x "$DRP_S3CLIENT" ] || drp_fail "$DRP_S3CLIENT not built (make)"
PART=$((5 * 1024 * 1024))
s3c() { timeout 120 "$DRP_S3CLIENT" -p $PART "$@"; }
s3tls() { s3c -C "$TEST_CA" -r "s3.test=$CEPH_IP" -r "$B.s3.test=$CEPH_IP" "$@"; }
keystream big $((2 * PART + 12345))
BK=blobs/sha256/$(sha256sum <"$SCEN/big" | cut -c1-64)
SK=blobs/sha256/$(sha256sum <"$SCEN/other" | cut -c1-64)
expect_eq "client: small object by a conditional PUT" stored \
	"$(s3c "$S3_HTTP" $B put "$SK" "$SCEN/other")"
expect_eq "client: the same again (412: already there)" "already stored" \
	"$(s3c "$S3_HTTP" $B put "$SK" "$SCEN/other")"
m=$(log_mark "$(rgw_log)")
expect_eq "client: large object, multipart, announced 1 MiB at a time" "stored (multipart)" \
	"$(s3tls https://s3.test $B put "$BK" "$SCEN/big" 1048576)"
expect_eq "client: parts uploaded (radosgw's log)" 3 \
	"$(log_since "$(rgw_log)" "$m" | grep -c "\"PUT /$B/$BK?partNumber=" || true)"
expect_eq "client: GET, virtual-hosted over TLS" 200 \
	"$(s3tls -a virtual https://s3.test $B get "$BK" "$SCEN/big.got")"
expect_file_digest "client: multipart object" "$SCEN/big.got" "$(sha "$SCEN/big")"
expect_eq "client: ranged GET" 206 \
	"$(s3c "$S3_HTTP" $B get "$BK" "$SCEN/big.range" 1000 1999)"
dd if="$SCEN/big" of="$SCEN/big.range.want" bs=1000 skip=1 count=1 status=none
expect_file_digest "client: ranged body" "$SCEN/big.range" "$(sha "$SCEN/big.range.want")"
expect_eq "client: HEAD" "200 $((2 * PART + 12345))" "$(s3c "$S3_HTTP" $B head "$BK")"

keystream doomed $((PART + 777))
DK=blobs/sha256/$(sha256sum <"$SCEN/doomed" | cut -c1-64)
AID=$(s3c "$S3_HTTP" $B abort "$DK" "$SCEN/doomed")
expect_match "client: aborted upload had an id" '^[^ ]+$' "$AID"
expect_match "client: nothing visible after the abort" "^404 " "$(s3c "$S3_HTTP" $B head "$DK")"
expect_eq "list uploads" 200 "$(code "$S3_HTTP/$B?uploads=")"
expect_no_match "the aborted upload is not listed" "$AID" "$(cat "$SCEN/body")"
LID=$(s3c "$S3_HTTP" $B leave "$DK" "$SCEN/doomed")
expect_match "client: nothing visible under a left upload" "^404 " "$(s3c "$S3_HTTP" $B head "$DK")"
expect_eq "list uploads" 200 "$(code "$S3_HTTP/$B?uploads=")"
expect_match "the left upload is listed" "<UploadId>$LID</UploadId>" "$(cat "$SCEN/body")"
expect_eq "sweep with a day's age: listed 1, aborted 0" "1 0" "$(s3c "$S3_HTTP" $B sweep blobs/ 86400)"
# The store's clock moves on (a second at least) before it counts as old.
drp_wait "the left upload to be a second old by the store's clock" 10 \
	bash -c "[ \"\$(timeout 60 '$DRP_S3CLIENT' '$S3_HTTP' $B sweep blobs/ 0.5)\" = '1 1' ]"
expect_eq "list uploads after the sweep" 200 "$(code "$S3_HTTP/$B?uploads=")"
expect_no_match "no upload left" '<Upload>' "$(cat "$SCEN/body")"
expect_match "client: still nothing visible" "^404 " "$(s3c "$S3_HTTP" $B head "$DK")"

# ---- 7. Redis: the fill lease. SET NX PX takes it once; the holder's
# token extends it (compare-and-extend), another token does not; it
# expires by Redis's own TTL, after which it can be taken again.
LEASE=drp:lease:blob:sha256:$(sha256sum <"$SCEN/obj" | cut -c1-64)
expect_eq "take the lease" OK "$(rcli SET "$LEASE" holder-a NX PX 60000)"
expect_eq "a second taker gets nothing" "" "$(rcli SET "$LEASE" holder-b NX PX 60000)"
expect_eq "the holder is recorded" holder-a "$(rcli GET "$LEASE")"
EXTEND='if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end'
expect_eq "compare-and-extend by the holder" 1 "$(rcli EVAL "$EXTEND" 1 "$LEASE" holder-a 2000)"
expect_eq "compare-and-extend by another" 0 "$(rcli EVAL "$EXTEND" 1 "$LEASE" holder-b 60000)"
pttl=$(rcli PTTL "$LEASE")
expect_le "remaining lease (ms)" 2000 "$pttl"
expect_ge "remaining lease (ms)" 1 "$pttl"
# Expiry is Redis's: wait (bounded) until another taker succeeds.
drp_wait "the lease to expire" 10 bash -c "[ \"\$(timeout 5 redis-cli -h $REDIS_IP -p $REDIS_PORT SET $LEASE holder-b NX PX 60000)\" = OK ]"
expect_eq "the new holder" holder-b "$(rcli GET "$LEASE")"
RELEASE='if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end'
expect_eq "release by a former holder" 0 "$(rcli EVAL "$RELEASE" 1 "$LEASE" holder-a)"
expect_eq "release by the holder" 1 "$(rcli EVAL "$RELEASE" 1 "$LEASE" holder-b)"
expect_eq "failure marker" OK "$(rcli SET "drp:failed:$LEASE" upstream-502 PX 30000)"

drp_log "s3_engines: ceph up in $CEPH_START_SECONDS s"
