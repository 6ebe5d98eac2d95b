#!/bin/bash
# SPDX-License-Identifier: MIT
# The cache for an administrator (issue 13): `cache list` (text, and JSON
# parsed here) shows the pulled image by registry, repository and tag
# with its objects and sizes; `cache purge REF` removes the tag, the
# manifest and the blobs, after which a pull is a miss again, counted in
# the registry's own log; `cache verify` finds a blob damaged on disk,
# removes it, and the next GET fetches it again. All through the running
# daemon's admin socket (owner-only), then on the cache directory itself
# once the daemon is stopped. (Own proxy, empty cache.)
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools skopeo python3 setpriv
drp_own_proxy
reg=$(reg_log open)
ini=$PROXY_DIR/proxy.ini
sock=$PROXY_DIR/admin.sock
ctl() { "$DRP_PROXY" -c "$ini" "$@"; }
obj() { echo "$PROXY_DIR/cache/blobs/sha256/${1:7:2}/${1#sha256:}"; }
all_stored() {
	local d
	for d in "$@"; do [ -s "$(obj "$d")" ] || return 1; done
}
img=$WORK/images/small/blobs/sha256
size_of() { stat -c %s "$img/${1#sha256:}"; }

expect_eq "admin socket mode" 600 "$(stat -c %a "$sock")"

# ---- a pulled image, listed
pskopeo copy --quiet --retry-times 0 docker://registry.test/test/small:v1 "dir:$SCEN/a"
check_dir_image "$SCEN/a" "$SMALL_DIGEST" $SMALL_BLOBS
# shellcheck disable=SC2086
drp_wait "the image in the cache" 20 all_stored "$SMALL_DIGEST" $SMALL_BLOBS

ctl cache list >"$SCEN/list.txt"
sed 's/^/    /' "$SCEN/list.txt" >&2
expect_match "list: registry line" '^registry\.test$' "$(cat "$SCEN/list.txt")"
expect_match "list: repository line" '^  test/small$' "$(cat "$SCEN/list.txt")"
nobj=$(($(wc -w <<<"$SMALL_BLOBS") + 1))
expect_match "list: tag line" "^    v1 +${SMALL_DIGEST:0:19} +$nobj +[0-9.]+ (KiB|MiB) +20[0-9-]+ [0-9:]+$" \
	"$(cat "$SCEN/list.txt")"
grep -q "admin socket: cache list: exit 0" "$PROXY_DIR/proxy.log" ||
	drp_fail "the daemon did not run the listing"

ctl cache list --json >"$SCEN/list.json"
total=$(size_of "$SMALL_DIGEST")
for b in $SMALL_BLOBS; do total=$((total + $(size_of "$b"))); done
# shellcheck disable=SC2086
python3 - "$SCEN/list.json" "$SMALL_DIGEST" "$total" $SMALL_BLOBS <<'EOF' ||
import json, sys
d = json.load(open(sys.argv[1]))
want, total, blobs = sys.argv[2], int(sys.argv[3]), sys.argv[4:]
regs = {r["registry"]: r for r in d["registries"]}
repos = {p["repository"]: p for p in regs["registry.test"]["repositories"]}
tags = [t for t in repos["test/small"]["tags"] if t["tag"] == "v1"]
assert tags, repos
for t in tags:
    assert t["digest"] == want, t
    assert t["objects"] == len(blobs) + 1 and t["cached"] == t["objects"], t
    assert t["bytes"] == total, (t["bytes"], total)
    content = {c["digest"]: c for c in t["content"]}
    assert set(content) == set(blobs) | {want}, content
    assert content[want]["kind"] == "manifest"
    assert all(content[b]["kind"] == "blob" and content[b]["cached"] for b in blobs)
    assert t["last_used"].endswith("Z") and t["fetched_at"].endswith("Z")
assert d["objects"] == len(blobs) + 1 and d["bytes"] == total, d
assert d["unattributed"]["objects"] == 0
print("json ok:", len(tags), "tag record(s),", total, "bytes")
EOF
	drp_fail "cache list --json does not describe the cached image"

# ---- purge, then a pull misses again
ctl cache purge registry.test/test/small:v1 >"$SCEN/purge.txt"
sed 's/^/    /' "$SCEN/purge.txt" >&2
expect_match "purge: the tag" "^removed tag registry\.test/test/small:v1 .* -> $SMALL_DIGEST$" "$(cat "$SCEN/purge.txt")"
expect_match "purge: the manifest" "^removed manifest $SMALL_DIGEST " "$(cat "$SCEN/purge.txt")"
for b in $SMALL_BLOBS; do
	expect_match "purge: blob ${b:7:12}" "^removed blob $b " "$(cat "$SCEN/purge.txt")"
	[ ! -e "$(obj "$b")" ] || drp_fail "purge left $(obj "$b")"
done
expect_eq "purge: nothing left in the listing" 0 \
	"$(ctl cache list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["objects"])')"
if ctl cache purge registry.test/test/small:v1 >/dev/null 2>"$SCEN/err"; then
	drp_fail "purging a tag that is not cached succeeded"
fi
expect_match "purge of nothing says so" "no cached tag registry\.test/test/small:v1" "$(cat "$SCEN/err")"

mark=$(log_mark "$reg")
amk=$(amark)
pskopeo copy --quiet --retry-times 0 docker://registry.test/test/small:v1 "dir:$SCEN/b"
check_dir_image "$SCEN/b" "$SMALL_DIGEST" $SMALL_BLOBS
for b in $SMALL_BLOBS; do
	wait_log "$reg" "$mark" "$(req_pat GET "/v2/test/small/blobs/$b")" 1 5
	expect_eq "after purge: upstream GETs of ${b:7:12}" 1 \
		"$(count_since "$reg" "$mark" "$(req_pat GET "/v2/test/small/blobs/$b")")"
	expect_eq "after purge: result for ${b:7:12}" MISS \
		"$(anext '$11' "$amk" registry.test:443 GET "/v2/test/small/blobs/$b")"
done
expect_eq "after purge: upstream manifest GETs" 1 \
	"$(count_since "$reg" "$mark" "$(req_pat GET /v2/test/small/manifests/v1)")"

# ---- verify: a blob damaged in place (same size) is found and removed
layer=${SMALL_LAYERS%% *}
# shellcheck disable=SC2086
drp_wait "the image in the cache again" 20 all_stored "$SMALL_DIGEST" $SMALL_BLOBS
printf 'X' | dd of="$(obj "$layer")" bs=1 seek=1000 conv=notrunc status=none
rc=0
ctl cache verify >"$SCEN/verify.txt" 2>&1 || rc=$?
sed 's/^/    /' "$SCEN/verify.txt" >&2
expect_eq "verify exit status with a bad object" 1 "$rc"
expect_match "verify names the bad blob" "^bad $layer \([0-9.]+ KiB\): content hashes to sha256:[0-9a-f]{64}; removed$" \
	"$(cat "$SCEN/verify.txt")"
expect_match "verify's count" "^verified $nobj object\(s\), .*: 1 bad, removed$" "$(cat "$SCEN/verify.txt")"
[ ! -e "$(obj "$layer")" ] || drp_fail "verify left the damaged file"
expect_eq "verify again: clean" "verified $((nobj - 1)) object(s)" \
	"$(ctl cache verify | sed -n 's/^\(verified [0-9]* object(s)\),.*/\1/p')"
mark=$(log_mark "$reg")
pcurl -o "$SCEN/layer" "https://registry.test/v2/test/small/blobs/$layer"
expect_file_digest "the removed blob, fetched again" "$SCEN/layer" "$layer"
wait_log "$reg" "$mark" "$(req_pat GET "/v2/test/small/blobs/$layer")" 1 5
expect_eq "upstream GETs for the removed blob" 1 \
	"$(count_since "$reg" "$mark" "$(req_pat GET "/v2/test/small/blobs/$layer")")"

# ---- only the daemon's user (and root) get in
rc=0
setpriv --reuid 65534 --regid 65534 --clear-groups "$DRP_PROXY" -c "$ini" cache list \
	>/dev/null 2>"$SCEN/nobody" || rc=$?
[ "$rc" != 0 ] || drp_fail "another user listed the cache"
expect_match "another user: the socket refuses" "admin socket $sock: Permission denied" "$(cat "$SCEN/nobody")"

# ---- the daemon stopped: the commands open the directory themselves
drp_unwatch_proxies
drp_stop "$PROXY_PID" 15 || drp_fail "the proxy did not stop"
expect_eq "the proxy's exit status" 0 "$DRP_STOP_STATUS"
[ ! -e "$sock" ] || drp_fail "the admin socket outlived the daemon"
# shellcheck disable=SC2086
drp_wait "the image in the cache again" 20 all_stored "$SMALL_DIGEST" $SMALL_BLOBS
ctl cache list >"$SCEN/list2.txt"
expect_match "standalone list" "^    v1 +${SMALL_DIGEST:0:19} +$nobj " "$(cat "$SCEN/list2.txt")"
ctl cache purge "$layer" >"$SCEN/purge2.txt"
expect_match "standalone purge of a blob by digest" "^removed blob $layer " "$(cat "$SCEN/purge2.txt")"
[ ! -e "$(obj "$layer")" ] || drp_fail "standalone purge left the blob"
ctl cache verify >/dev/null
