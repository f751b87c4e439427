#!/bin/sh
# Installs the real programs the end-to-end suite runs beside mxfront and
# mxfilter (Debian packages). Idempotent: does nothing when all are present.
# Services are not started by the install (policy-rc.d); each test starts its
# own instance on loopback, on a free port, and stops it by PID.
set -eu

# command-to-check  package
peers='
tcpserver ucspi-tcp-ipv6
rblsmtpd ucspi-tcp-ipv6
xinetd xinetd
swaks swaks
exim4 exim4-daemon-light
rbldnsd rbldnsd
redis-server redis-server
clamd clamav-daemon
clamscan clamav
spamd spamd
spamassassin spamassassin
rspamd rspamd
haproxy haproxy
systemd-socket-activate systemd
systemd-analyze systemd
prometheus prometheus
chromium chromium
unbound unbound
cdb tinycdb
'

missing=$(
	echo "$peers" | while read -r cmd pkg; do
		[ -n "$cmd" ] || continue
		PATH=$PATH:/usr/sbin:/sbin command -v "$cmd" >/dev/null 2>&1 || echo "$pkg"
	done
	# swaks speaks IPv6 only with this Perl module.
	perl -MIO::Socket::INET6 -e 1 2>/dev/null || echo libio-socket-inet6-perl
	# openbsd-inetd's libraries (its binary is unpacked below: the package
	# itself conflicts with xinetd, and the suite runs both).
	[ -x /usr/local/sbin/openbsd-inetd ] || echo libbsd0 libevent-2.1-7 libtirpc3 libwrap0
)
missing=$(echo "$missing" | tr ' ' '\n' | sort -u | tr '\n' ' ')
missing=${missing% }

unpack_inetd() {
	[ -x /usr/local/sbin/openbsd-inetd ] && return 0
	dir=$(mktemp -d)
	(cd "$dir" && apt-get download -q openbsd-inetd >/dev/null 2>&1) ||
		{ apt-get update -q >/dev/null && (cd "$dir" && apt-get download -q openbsd-inetd >/dev/null); }
	dpkg-deb -x "$dir"/openbsd-inetd_*.deb "$dir/root"
	install -D -m 755 "$dir/root/usr/sbin/inetd" /usr/local/sbin/openbsd-inetd
	rm -rf "$dir"
}

if [ -z "$missing" ]; then
	[ "$(id -u)" = 0 ] && unpack_inetd
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "peers.sh: missing peers ($missing) and not root: install them with apt-get" >&2
	exit 1
fi
echo "peers.sh: installing $missing" >&2
export DEBIAN_FRONTEND=noninteractive
# Keep package scripts from starting daemons: the tests start their own.
had_policy=no
[ -e /usr/sbin/policy-rc.d ] && had_policy=yes
if [ $had_policy = no ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
fi
trap '[ $had_policy = yes ] || rm -f /usr/sbin/policy-rc.d' EXIT
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null ||
	{ apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $missing >/dev/null; }
unpack_inetd
