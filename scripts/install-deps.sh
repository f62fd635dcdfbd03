#!/bin/sh
# Installs every Debian package that building, testing and the demo need (run as root).
#
# Also writes the deb-src entry for the trixie suite that `apt-get source`
# needs to fetch PgBouncer's Debian source package, in deb822 form in a file
# of its own, with URIs and Signed-By copied from the machine's Debian sources.
set -eu

if [ "$(id -u)" != 0 ]; then
	echo "install-deps.sh: run as root (it installs Debian packages with apt-get)" >&2
	exit 1
fi

SRC_ENTRY=/etc/apt/sources.list.d/pgbouncer-vault-trixie-src.sources

# archive_uri / archive_keyring: the main Debian archive this machine uses.
archive_uri=
archive_keyring=
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
	# first stanza whose URIs is not the security archive
	eval "$(awk '
		BEGIN { RS = ""; FS = "\n" }
		{
			uri = ""; key = ""
			for (i = 1; i <= NF; i++) {
				if ($i ~ /^URIs:/) { uri = $i; sub(/^URIs:[ \t]*/, "", uri) }
				if ($i ~ /^Signed-By:/) { key = $i; sub(/^Signed-By:[ \t]*/, "", key) }
			}
			if (uri != "" && uri !~ /security/ && !done) {
				printf "archive_uri=\"%s\"\narchive_keyring=\"%s\"\n", uri, key; done = 1
			}
		}' /etc/apt/sources.list.d/debian.sources)"
fi
if [ -z "$archive_uri" ] && [ -f /etc/apt/sources.list ]; then
	archive_uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
fi
[ -n "$archive_uri" ] || archive_uri=http://deb.debian.org/debian
if [ -z "$archive_keyring" ] && [ -f /usr/share/keyrings/debian-archive-keyring.gpg ]; then
	archive_keyring=/usr/share/keyrings/debian-archive-keyring.gpg
fi

if [ ! -f "$SRC_ENTRY" ]; then
	{
		echo "# Written by pgbouncer-vault's scripts/install-deps.sh: PgBouncer's Debian source package."
		echo "Types: deb-src"
		echo "URIs: $archive_uri"
		echo "Suites: trixie"
		echo "Components: main"
		# without Signed-By, apt checks against the keys in /etc/apt/trusted.gpg.d
		[ -z "$archive_keyring" ] || echo "Signed-By: $archive_keyring"
	} >"$SRC_ENTRY"
fi

# Debian's postgresql packages would create and start a cluster of their own;
# the tests start PostgreSQL themselves in temporary directories.
mkdir -p /etc/postgresql-common
if [ ! -f /etc/postgresql-common/createcluster.conf ]; then
	echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
fi

PACKAGES="
	ca-certificates g++ make cmake pkg-config patch xz-utils
	libevent-dev libjansson-dev libcurl4-openssl-dev libssl-dev libc-ares-dev
	libgtest-dev libgmock-dev libpq-dev
	postgresql-15 postgresql-client-15
	python3 python3-pytest python3-pytest-timeout python3-psycopg python3-cryptography python3-jwt
	openssl procps util-linux
	clang libclang-rt-14-dev
"

# shellcheck disable=SC2086
missing=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' $PACKAGES 2>/dev/null | awk '$1 != "ii" { print $2 }')
for p in $PACKAGES; do
	dpkg-query -W -f='${Package}\n' "$p" >/dev/null 2>&1 || missing="$missing $p"
done

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if [ -n "$(echo "$missing" | tr -d ' \n')" ]; then
	echo "-- installing Debian packages:" $missing
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
echo "-- Debian packages for pgbouncer-vault are installed"
