#!/bin/bash
# SPDX-License-Identifier: MIT
# A ranged GET that goes upstream uncached keeps its Range: while a blob
# is being fetched for one repository (test/slow of fakeupstream.py), the
# same digest asked for under another repository (test/good) passes
# through under the client's own request, and the client gets 206 and
# exactly the range, not a 200 of the whole blob.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_start_fakeupstream $((128 * 1024))
DRP_IT_REGISTRIES="bad.test" drp_proxy_conf range-pass "$(drp_free_port)"
drp_start_proxy range-pass
fake=$WORK/logs/fake.out
layer=${SMALL_LAYERS%% *}
layer_file=$WORK/images/small/blobs/sha256/${layer#sha256:}

# The slow fill, for test/slow (about 4 s), held at half by the fake
# while $WORK/slowgate exists: it is still under way when the ranged GET
# comes, however long that took to start.
touch "$WORK/slowgate"
drp_at_exit "rm -f $WORK/slowgate"
m=$(log_mark "$fake")
pcurl -o "$SCEN/slow" "https://bad.test/v2/test/slow/blobs/$layer" &
slow=$!
wait_log "$fake" "$m" "$(req_pat GET "/v2/test/slow/blobs/$layer")" 1 10
expect_eq "the slow fill started" 1 "$(count_since "$fake" "$m" "$(req_pat GET "/v2/test/slow/blobs/$layer")")"

# Meanwhile a ranged GET under test/good: through, with its Range.
m=$(log_mark "$fake")
code=$(pcurl -o "$SCEN/range" -D "$SCEN/h" -w '%{http_code}' -r 4096-8191 \
	"https://bad.test/v2/test/good/blobs/$layer")
expect_eq "ranged pass status" 206 "$code"
expect_eq "ranged pass Content-Range" "bytes 4096-8191/$(stat -c %s "$layer_file")" "$(hdr Content-Range <"$SCEN/h")"
expect_eq "ranged pass bytes" "$(tail -c +4097 "$layer_file" | head -c 4096 | sha256sum)" "$(sha256sum <"$SCEN/range")"
wait_log "$fake" "$m" "$(req_pat GET "/v2/test/good/blobs/$layer")" 1 5
expect_eq "upstream answers to the pass" 206 \
	"$(log_since "$fake" "$m" | grep -F "$(req_pat GET "/v2/test/good/blobs/$layer")" | awk '{ print $NF }' | tr '\n' ' ' | sed 's/ $//')"

rm -f "$WORK/slowgate"
wait "$slow" || drp_fail "the slow client failed"
expect_file_digest "the slow fill's client" "$SCEN/slow" "$layer"
