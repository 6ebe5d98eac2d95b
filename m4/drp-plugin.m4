# SPDX-License-Identifier: MIT
# drp-plugin.m4 -- autoconf support for docker-registry-proxy auth plugins
#
# DRP_PLUGIN_INIT([MIN-VERSION])
#
#   Finds the installed plugin ABI (<drp/plugin.h>) through pkg-config
#   (module drp-plugin, optionally at least MIN-VERSION) and sets, with
#   AC_SUBST:
#
#   DRP_PLUGIN_CFLAGS   where <drp/plugin.h> is, plus -fvisibility=hidden
#                       (everything but the descriptor stays private)
#   DRP_PLUGIN_LDFLAGS  libtool flags for a loadable module that exports
#                       only the descriptor:
#                       -module -avoid-version -shared
#                       -export-symbols-regex '^drp_plugin$'
#   drpplugindir        the directory where the daemon finds plugins by
#                       name, re-rooted under ${libdir} so that --prefix
#                       and `make distcheck` are honoured
#   DRP_PLUGIN_CHECK    a command for `make check` that fails unless a
#                       built module exports exactly the symbol drp_plugin:
#                           $(DRP_PLUGIN_CHECK) .libs/myreg.so
#
#   Typical Makefile.am:
#       drpplugin_LTLIBRARIES = myreg.la
#       myreg_la_SOURCES = myreg.c
#       myreg_la_CFLAGS = $(DRP_PLUGIN_CFLAGS)
#       myreg_la_LDFLAGS = $(DRP_PLUGIN_LDFLAGS)
#       check-local: myreg.la
#               $(DRP_PLUGIN_CHECK) .libs/myreg.so
#
#   The daemon also loads a module by path (plugin = /path/myreg.so), so
#   installing into drpplugindir is optional.

AC_DEFUN([DRP_PLUGIN_INIT], [
	AC_REQUIRE([PKG_PROG_PKG_CONFIG])
	PKG_CHECK_MODULES([DRP_PLUGIN],
		[drp-plugin m4_ifval([$1], [>= $1])])
	DRP_PLUGIN_CFLAGS="$DRP_PLUGIN_CFLAGS -fvisibility=hidden"
	DRP_PLUGIN_LDFLAGS="-module -avoid-version -shared -export-symbols-regex '^drp_plugin\$\$'"

	AC_MSG_CHECKING([for the drp plugin directory])
	_drp_dir=`$PKG_CONFIG --variable=plugindir drp-plugin`
	_drp_libdir=`$PKG_CONFIG --variable=libdir drp-plugin`
	AS_CASE([$_drp_dir],
		["$_drp_libdir"/*],
		[drpplugindir="\${libdir}${_drp_dir#"$_drp_libdir"}"],
		[drpplugindir="$_drp_dir"])
	AC_MSG_RESULT([$drpplugindir])

	AC_CHECK_TOOL([NM], [nm])
	DRP_PLUGIN_CHECK='$(SHELL) -c '\''s=`$(NM) -D --defined-only "$$0" | awk "NF == 3 { print \$$3 }" | sort -u`; test "x$$s" = xdrp_plugin || { echo "$$0 must export only drp_plugin, exports: $$s" >&2; exit 1; }'\'

	AC_SUBST([DRP_PLUGIN_CFLAGS])
	AC_SUBST([DRP_PLUGIN_LDFLAGS])
	AC_SUBST([drpplugindir])
	AC_SUBST([DRP_PLUGIN_CHECK])
])
