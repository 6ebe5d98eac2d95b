#!/bin/sh
# SPDX-License-Identifier: MIT
# Line coverage of src/ by the unit tests and the fuzz-corpus replays (not
# the integration suite): builds a --coverage copy of the tree, runs
# `make check-unit` there and prints a table per folder and per file.
#
#   scripts/coverage.sh            (or `make coverage`)
#   DRP_COVERAGE_EXCLUDE="tests/unit/test_fetch" scripts/coverage.sh
#                                  (without those tests: what they add)
#
# The copy lives in $DRP_COVERAGE_DIR (default: build-coverage/ in the
# source tree, which .gitignore covers). It holds the files git tracks
# plus untracked ones it does not ignore, so uncommitted work is measured
# too; mtimes are kept, so a second run rebuilds only what changed. The
# copy is needed because an in-tree configured source directory refuses
# VPATH builds. Needs git, autotools and gcov (part of gcc).
set -eu

srcdir=$(cd "$(dirname "$0")/.." && pwd)
dir=${DRP_COVERAGE_DIR:-$srcdir/build-coverage}
jobs=${DRP_COVERAGE_JOBS:-2}

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
(cd "$srcdir" && git ls-files -z --cached --others --exclude-standard) |
	(cd "$srcdir" && tar --null -T - -cf -) | tar -xpf - -C "$dir"

cd "$dir"
if [ ! -f config.status ] || [ configure.ac -nt config.status ] ||
	[ Makefile.am -nt config.status ]; then
	autoreconf -fi >autoreconf.out 2>&1 || {
		cat autoreconf.out
		exit 1
	}
	./configure CFLAGS='--coverage -O0 -g' LDFLAGS='--coverage' \
		>configure.out 2>&1 || {
		tail -n 30 configure.out
		exit 1
	}
fi
make -j"$jobs" >build.out 2>&1 || {
	tail -n 40 build.out
	exit 1
}
# Counters of an earlier run would add up with this one's.
find . -name '*.gcda' -exec rm -f {} +
status=0
make -j"$jobs" check-unit CHECK_UNIT_EXCLUDE="${DRP_COVERAGE_EXCLUDE:-}" \
	>check.out 2>&1 || status=$?
grep -E '^(PASS|FAIL|XFAIL|XPASS|ERROR|SKIP):|^# ' check.out || true
if [ "$status" != 0 ]; then
	echo "coverage: the tests failed (see $dir/check.out); coverage below is partial" >&2
fi

# One gcov summary per object. libtool may compile a source twice (PIC
# in .libs/ and not); the object with counters (.gcda) is the one the
# tests ran, else any (then every line counts as not executed).
tab=$(mktemp)
trap 'rm -f "$tab"' EXIT
for src in $(cd "$dir" && git -C "$srcdir" ls-files 'src/*.c'); do
	base=$(basename "$src" .c)
	d=$(dirname "$src")
	pick=
	for g in "$d"/*"$base".gcno "$d"/.libs/*"$base".gcno; do
		[ -f "$g" ] || continue
		case "$(basename "$g" .gcno)" in
		"$base" | *-"$base") ;;
		*) continue ;;
		esac
		if [ -f "${g%.gcno}.gcda" ]; then
			pick=$g
			break
		fi
		[ -n "$pick" ] || pick=$g
	done
	if [ -z "$pick" ]; then
		echo "$src 0 0 nobuild" >>"$tab"
		continue
	fi
	# gcov -n: summaries only; "File 'x'" then "Lines executed:P% of N".
	gcov -n -o "$(dirname "$pick")" "$pick" 2>/dev/null | awk -v want="$src" '
		/^File / { f = $2; gsub(/\x27/, "", f); sub(/^.*\/src\//, "src/", f); next }
		/^Lines executed:/ && f == want {
			split($2, a, ":"); p = a[2]; sub(/%/, "", p); n = $4
			printf "%s %d %d\n", f, int(p * n / 100 + 0.5), n; f = ""
		}' >>"$tab"
done

fmt='%-34s %6s %6s %8s\n'
row='{ printf "%-34s %6d %6d %7.1f%%\n", $1, $2, $3, $3 ? 100 * $2 / $3 : 0 }'
printf "$fmt" file lines of cover
sort -k1,1 "$tab" | awk "$row"
echo
printf "$fmt" folder lines of cover
awk '{ d = $1; sub(/\/[^\/]*$/, "/", d); h[d] += $2; a[d] += $3 }
	END { for (d in h) print (d == "src/" ? "src/*.c" : d), h[d], a[d] }' "$tab" |
	sort -k1,1 | awk "$row"
awk '{ h += $2; a += $3 } END { print "total src/", h, a }' "$tab" |
	awk '{ printf "%-34s %6d %6d %7.1f%%\n", $1 " " $2, $3, $4, $4 ? 100 * $3 / $4 : 0 }'
exit "$status"
