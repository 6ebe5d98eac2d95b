#!/bin/sh
# SPDX-License-Identifier: MIT
# How long the fs cache backend takes to become ready with many objects
# (the start-up index scan). Target: 100k objects in about a second.
#   bench/cache_index.sh [BUILD_DIR] [N] [SIZE]
# BUILD_DIR holds the built bench/cache_index (default: .). A cold-cache
# run (page cache dropped) is added when /proc/sys/vm/drop_caches is
# writable (root).
set -eu
build=${1:-.}
n=${2:-100000}
size=${3:-1024}
tool=$build/bench/cache_index
[ -x "$tool" ] || { echo "build $tool first (make bench/cache_index)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/var/tmp}/drp-bench-cache.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

t0=$(date +%s.%N)
"$tool" populate "$work/cache" "$n" "$size"
t1=$(date +%s.%N)
echo "populated $n objects of $size bytes in $(echo "$t1 - $t0" | bc) s"

for run in 1 2 3; do
	printf 'warm open %d: ' "$run"
	"$tool" open "$work/cache"
done
if [ -w /proc/sys/vm/drop_caches ]; then
	sync
	echo 3 > /proc/sys/vm/drop_caches
	printf 'cold open: '
	"$tool" open "$work/cache"
fi
