#!/bin/bash
# SPDX-License-Identifier: MIT
# Range on a cached blob (RFC 9110 §14): one valid range gets 206 with
# exactly its bytes; a syntactically invalid Range, or several ranges (no
# multipart/byteranges), is ignored: 200 with the whole blob; a valid but
# unsatisfiable one gets 416 with "Content-Range: bytes */SIZE". All from
# the cache, without the upstream.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
reg=$(reg_log open)
layer=${SMALL_LAYERS%% *}
layer_file=$WORK/images/small/blobs/sha256/${layer#sha256:}
size=$(stat -c %s "$layer_file")
url=https://registry.test/v2/test/small/blobs/$layer

# Cached first (a miss here, or a hit if another scenario fetched it).
pcurl -o "$SCEN/blob" "$url"
expect_file_digest "whole blob" "$SCEN/blob" "$layer"
mark=$(log_mark "$reg")

# ask NAME RANGE: GET with that Range field; sets code, body in $SCEN/NAME.
ask()
{
	code=$(pcurl -o "$SCEN/$1" -D "$SCEN/$1.h" -w '%{http_code}' -H "Range: $2" "$url")
}
whole()
{
	ask "$1" "$2"
	expect_eq "'$2': status" 200 "$code"
	expect_file_digest "'$2': whole blob" "$SCEN/$1" "$layer"
	expect_eq "'$2': no Content-Range" "" "$(hdr Content-Range <"$SCEN/$1.h")"
}
unsatisfiable()
{
	ask "$1" "$2"
	expect_eq "'$2': status" 416 "$code"
	expect_eq "'$2': Content-Range" "bytes */$size" "$(hdr Content-Range <"$SCEN/$1.h")"
	expect_eq "'$2': no body" 0 "$(stat -c %s "$SCEN/$1")"
}
partial() # NAME RANGE FIRST LAST
{
	ask "$1" "$2"
	expect_eq "'$2': status" 206 "$code"
	expect_eq "'$2': Content-Range" "bytes $3-$4/$size" "$(hdr Content-Range <"$SCEN/$1.h")"
	expect_eq "'$2': bytes" "$(tail -c +$(($3 + 1)) "$layer_file" | head -c $(($4 - $3 + 1)) | sha256sum)" \
		"$(sha256sum <"$SCEN/$1")"
}

# Syntactically invalid: ignored.
whole bad-suffix 'bytes= -5-'
whole abc 'bytes=abc'
whole signed 'bytes=+5-9'
whole reversed 'bytes=9-5'
# Several ranges: ignored (the proxy sends no multipart/byteranges).
whole multi 'bytes=0-0,5-6'
# Valid but unsatisfiable.
unsatisfiable past 'bytes=999999999-'
unsatisfiable at-end "bytes=$size-"
unsatisfiable empty-suffix 'bytes=-0'
# Valid: exactly those bytes.
partial first 'bytes=0-0' 0 0
partial open "bytes=$((size - 10))-" $((size - 10)) $((size - 1))
partial suffix 'bytes=-5' $((size - 5)) $((size - 1))
partial clipped "bytes=100-$((size + 1000))" 100 $((size - 1))

settle_upstream registry.test "$reg" # nothing may have arrived
expect_eq "upstream blob requests for the ranges" 0 "$(count_since "$reg" "$mark" "/v2/test/small/blobs/$layer")"
