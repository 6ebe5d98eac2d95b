#!/bin/sh
# SPDX-License-Identifier: MIT
# The third-party path, end to end: install <drp/plugin.h> and
# drp-plugin.pc into a scratch root, build examples/auth-plugin with its
# own Makefile outside the source tree (pkg-config --cflags drp-plugin),
# then have the daemon's loader load the result by name.
set -eu
: "${top_builddir:?run from make check}" "${top_srcdir:?run from make check}"
MAKE=${MAKE:-make}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

$MAKE -s -C "$top_builddir" DESTDIR="$tmp/root" \
	install-include_drpHEADERS install-pkgconfigDATA >/dev/null
pcdir=$(dirname "$(find "$tmp/root" -name drp-plugin.pc)")
PKG_CONFIG_PATH=$pcdir
PKG_CONFIG_LIBDIR=$pcdir
PKG_CONFIG_SYSROOT_DIR=$tmp/root
export PKG_CONFIG_PATH PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR

# The header must come from the scratch installation, nowhere else.
case "$(pkg-config --cflags drp-plugin)" in
*"$tmp/root"*) ;;
*) echo "pkg-config does not point into the installed tree" >&2; exit 1 ;;
esac

mkdir "$tmp/src" "$tmp/plugins"
cp "$top_srcdir/examples/auth-plugin/example.c" \
	"$top_srcdir/examples/auth-plugin/Makefile" "$tmp/src/"
# A clean environment for the example's Makefile: no automake flags.
env -u MAKEFLAGS -u MFLAGS $MAKE -s -C "$tmp/src" CFLAGS="-O2 -Wall -Wextra -Werror" all check
cp "$tmp/src/example.so" "$tmp/plugins/"

DRP_EXAMPLE_DIR=$tmp/plugins "$top_builddir/tests/unit/test_plugin_example"
