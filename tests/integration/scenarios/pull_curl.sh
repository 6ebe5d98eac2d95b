#!/bin/bash
# SPDX-License-Identifier: MIT
# curl through the proxy, trusting only the proxy CA: the registry API
# answers byte for byte, headers included; keep-alive inside the tunnel;
# Range; HEAD; errors pass through.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_own_proxy
mark=$(amark)
SCHEMA2=application/vnd.docker.distribution.manifest.v2+json
layer=${SMALL_LAYERS%% *}
layer_file=$WORK/images/small/blobs/sha256/${layer#sha256:}
layer_size=$(stat -c %s "$layer_file")

# GET /v2/: the registry's 200 and its API version header.
code=$(pcurl -o "$SCEN/v2.json" -D "$SCEN/v2.hdr" -w '%{http_code}' https://registry.test/v2/)
expect_eq "GET /v2/ status" 200 "$code"
expect_eq "GET /v2/ API header" registry/2.0 "$(hdr Docker-Distribution-Api-Version <"$SCEN/v2.hdr")"
expect_eq "GET /v2/ body" '{}' "$(cat "$SCEN/v2.json")"

# Manifest by tag with Accept: byte for byte, digest and type headers.
code=$(pcurl -o "$SCEN/m.json" -D "$SCEN/m.hdr" -w '%{http_code}' -H "Accept: $SCHEMA2" \
	https://registry.test/v2/test/small/manifests/v1)
expect_eq "manifest status" 200 "$code"
expect_file_digest "manifest bytes" "$SCEN/m.json" "$SMALL_DIGEST"
expect_eq "Docker-Content-Digest" "$SMALL_DIGEST" "$(hdr Docker-Content-Digest <"$SCEN/m.hdr")"
expect_eq "manifest Content-Type" "$SCHEMA2" "$(hdr Content-Type <"$SCEN/m.hdr")"
expect_eq "manifest Content-Length" "$(stat -c %s "$SCEN/m.json")" "$(hdr Content-Length <"$SCEN/m.hdr")"

# Manifest by digest.
code=$(pcurl -o "$SCEN/md.json" -w '%{http_code}' -H "Accept: $SCHEMA2" \
	"https://registry.test/v2/test/small/manifests/$SMALL_DIGEST")
expect_eq "manifest by digest status" 200 "$code"
expect_file_digest "manifest by digest bytes" "$SCEN/md.json" "$SMALL_DIGEST"

# Every blob: sha256 equals the digest.
for b in $SMALL_BLOBS; do
	code=$(pcurl -o "$SCEN/blob" -w '%{http_code}' "https://registry.test/v2/test/small/blobs/$b")
	expect_eq "blob ${b:7:12} status" 200 "$code"
	expect_file_digest "blob ${b:7:12}" "$SCEN/blob" "$b"
done

# HEAD of a blob: 200, Content-Length of the blob, no body.
pcurl -I -o /dev/null -D "$SCEN/head.hdr" "https://registry.test/v2/test/small/blobs/$layer"
expect_eq "HEAD status" 200 "$(status_codes <"$SCEN/head.hdr" | awk '{ print $NF }')"
expect_eq "HEAD Content-Length" "$layer_size" "$(hdr Content-Length <"$SCEN/head.hdr")"
expect_eq "HEAD Docker-Content-Digest" "$layer" "$(hdr Docker-Content-Digest <"$SCEN/head.hdr")"

# Range: 206 with exactly the requested bytes.
code=$(pcurl -o "$SCEN/range" -w '%{http_code}' -r 1000-1999 "https://registry.test/v2/test/small/blobs/$layer")
expect_eq "Range status" 206 "$code"
expect_eq "Range bytes" "$(tail -c +1001 "$layer_file" | head -c 1000 | sha256sum)" "$(sha256sum <"$SCEN/range")"

# Keep-alive inside the intercepted tunnel: three requests on one curl
# command reuse one connection (the 2nd and 3rd open none).
conns=$(pcurl -o /dev/null -o /dev/null -o /dev/null -w '%{num_connects} ' \
	https://registry.test/v2/ "https://registry.test/v2/test/small/blobs/$layer" \
	https://registry.test/v2/test/small/manifests/v1)
expect_eq "connections opened per request" "1 0 0" "$(echo $conns)"

# A repository that does not exist: the registry's 404 and error body,
# the same as a direct request gets.
code=$(pcurl -o "$SCEN/err.json" -w '%{http_code}' -H "Accept: $SCHEMA2" \
	https://registry.test/v2/test/nope/manifests/v1)
expect_eq "unknown manifest status" 404 "$code"
expect_eq "unknown manifest error" MANIFEST_UNKNOWN "$(jq -r '.errors[0].code' "$SCEN/err.json")"
expect_eq "unknown manifest body = direct body" \
	"$(dcurl -H "Accept: $SCHEMA2" https://registry.test/v2/test/nope/manifests/v1)" "$(cat "$SCEN/err.json")"

# A blob that does not exist: 404 BLOB_UNKNOWN.
code=$(pcurl -o "$SCEN/err.json" -w '%{http_code}' \
	"https://registry.test/v2/test/small/blobs/sha256:$(printf '0%.0s' {1..64})")
expect_eq "unknown blob status" 404 "$code"
expect_eq "unknown blob error" BLOB_UNKNOWN "$(jq -r '.errors[0].code' "$SCEN/err.json")"

# The access log: one line per request, fields as documented. This
# proxy's cache was empty, so the first GET of the layer was a MISS.
line=$(anext '$0' "$mark" registry.test:443 GET "/v2/test/small/blobs/$layer")
[ -n "$line" ] || drp_fail "no access-log line for GET /v2/test/small/blobs/$layer"
expect_eq "access-log field count" 14 "$(echo "$line" | awk '{ print NF }')"
expect_match "access-log time" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$' \
	"$(echo "$line" | awk '{ print $1 }')"
expect_eq "access-log client, status, bytes_in, bytes_out, upstream, result, user" \
	"127.0.0.1 200 0 $layer_size 200 MISS -" "$(echo "$line" | awk '{ print $2, $6, $7, $8, $10, $11, $12 }')"
expect_match "access-log connection id, User-Agent" '^c[0-9]{6} "curl/[0-9.]+"$' "$(echo "$line" | awk '{ print $13, $14 }')"
expect_eq "access-log HEAD status" 200 "$(anext '$6' "$mark" registry.test:443 HEAD "/v2/test/small/blobs/$layer")"
expect_eq "access-log 404 status" 404 "$(anext '$6' "$mark" registry.test:443 GET /v2/test/nope/manifests/v1)"
