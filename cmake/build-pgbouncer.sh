#!/bin/sh
# Fetches PgBouncer from Debian's source package, checks it, patches it and builds it.
#
# Usage: build-pgbouncer.sh --download-dir DIR --build-dir DIR [--patches DIR]
#                           [--include DIR] [--cflags FLAGS] [--ldflags FLAGS]
#
# Debian's security patches (all of debian/patches/series except debian-config,
# which only changes Debian's default paths) are applied first, then every
# *.patch of --patches in name order.  Without --patches the result is
# upstream's 1.24.1 with Debian's security fixes: the baseline for comparisons.
set -eu

VERSION=1.24.1
DEBIAN_VERSION=1.24.1-1+deb13u2
ORIG=pgbouncer_${VERSION}.orig.tar.gz
ORIG_SHA256=da72a3aba13072876d055a3e58dd4aba4a5de4ed6148e73033185245598fd3e0
DEBIAN_TAR=pgbouncer_${DEBIAN_VERSION}.debian.tar.xz
DEBIAN_SHA256=2325bcaa2e71919d399b9e5aef5b94ff988fc1f1d296908c3937b682b7be5cbb

download_dir= build_dir= patches= include_dir= cflags="-g -O2" ldflags=
while [ $# -gt 0 ]; do
	case "$1" in
	--download-dir) download_dir=$2; shift 2 ;;
	--build-dir) build_dir=$2; shift 2 ;;
	--patches) patches=$2; shift 2 ;;
	--include) include_dir=$2; shift 2 ;;
	--cflags) cflags=$2; shift 2 ;;
	--ldflags) ldflags=$2; shift 2 ;;
	*) echo "build-pgbouncer.sh: unknown argument: $1" >&2; exit 2 ;;
	esac
done
[ -n "$download_dir" ] && [ -n "$build_dir" ] || { echo "build-pgbouncer.sh: --download-dir and --build-dir are required" >&2; exit 2; }

die() { echo "build-pgbouncer.sh: $*" >&2; exit 1; }

# check FILE SHA256: true when FILE exists with that digest
check() { [ -f "$1" ] && echo "$2  $1" | sha256sum --quiet -c - >/dev/null 2>&1; }

mkdir -p "$download_dir"
cd "$download_dir"
if ! check "$ORIG" "$ORIG_SHA256" || ! check "$DEBIAN_TAR" "$DEBIAN_SHA256"; then
	rm -f "$ORIG" "$DEBIAN_TAR" "pgbouncer_${DEBIAN_VERSION}.dsc"
	echo "-- downloading Debian source package pgbouncer=${DEBIAN_VERSION} into $download_dir"
	apt-get source --download-only "pgbouncer=${DEBIAN_VERSION}" >apt-source.log 2>&1 ||
		die "apt-get source pgbouncer=${DEBIAN_VERSION} failed (see $download_dir/apt-source.log).
Apt needs a deb-src entry for the trixie suite: run scripts/install-deps.sh, which writes one."
	check "$ORIG" "$ORIG_SHA256" || die "$download_dir/$ORIG: sha256 mismatch, expected $ORIG_SHA256; delete it and retry"
	check "$DEBIAN_TAR" "$DEBIAN_SHA256" || die "$download_dir/$DEBIAN_TAR: sha256 mismatch, expected $DEBIAN_SHA256; delete it and retry"
fi

src="$build_dir/src"
rm -rf "$src"
mkdir -p "$src"
tar -xzf "$download_dir/$ORIG" -C "$src" --strip-components=1
tar -xJf "$download_dir/$DEBIAN_TAR" -C "$src"
cd "$src"
grep -v -e '^#' -e '^[[:space:]]*$' debian/patches/series | while read -r p; do
	[ "$p" = debian-config ] && continue
	patch -p1 --batch --forward --quiet <"debian/patches/$p" || die "Debian patch $p does not apply"
done
if [ -n "$patches" ]; then
	for p in "$patches"/*.patch; do
		[ -e "$p" ] || continue
		patch -p1 --batch --forward --quiet <"$p" || die "$(basename "$p") does not apply to PgBouncer ${VERSION}"
	done
fi

cppflags=
[ -n "$include_dir" ] && cppflags="-I$include_dir"
./configure --prefix="$build_dir/install" \
	CPPFLAGS="$cppflags" CFLAGS="$cflags" LDFLAGS="$ldflags" >configure.log 2>&1 ||
	die "configure failed, see $src/configure.log"
make -j"$(nproc)" >make.log 2>&1 || { tail -n 30 make.log >&2; die "make failed, see $src/make.log"; }
cp pgbouncer "$build_dir/pgbouncer"
echo "-- built $build_dir/pgbouncer"
