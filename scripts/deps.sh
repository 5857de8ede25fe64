#!/usr/bin/env bash
# scripts/deps.sh — make sure the system tools Starling's tests and `make run` need are installed.
#
#   scripts/deps.sh              prosody (with lua-unbound, for the s2s tests' DNS), redis-server,
#                                chromium and chromium-driver (the web pages' browser test drives
#                                headless Chromium), and curl (the README tour)
#   scripts/deps.sh --ejabberd   the same plus ejabberd
#
# Missing packages come from Debian's archive. As root the script runs `apt-get update` (once) and
# `apt-get install`; otherwise it prints the exact command to run and exits 1. It also checks that Go
# is installed (on PATH or in /usr/local/go/bin). Installing Debian's packages may start their system
# services on the default ports; nothing in this repository relies on those services or ports. The
# system ejabberd is the exception: when this script installs ejabberd, it keeps that service from
# starting and disables it (see below).
set -euo pipefail
export PATH="/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}"

usage() {
	echo "usage: $0 [--ejabberd]" >&2
	exit 2
}

with_ejabberd=false
for arg in "$@"; do
	case "$arg" in
	--ejabberd) with_ejabberd=true ;;
	-h | --help) usage ;;
	*)
		echo "deps.sh: unknown argument: $arg" >&2
		usage
		;;
	esac
done

# Go is not a Debian package here (Debian 12's Go is too old): it has to be present already.
if ! command -v go >/dev/null 2>&1; then
	echo "deps.sh: Go not found (looked on PATH and in /usr/local/go/bin)." >&2
	echo "deps.sh: install the Go version named in go.mod into /usr/local/go (https://go.dev/doc/install)." >&2
	exit 1
fi

# binary:package pairs; a package is installed when its binary is missing.
wanted=(prosody:prosody prosodyctl:prosody redis-server:redis-server redis-cli:redis-tools curl:curl
	chromium:chromium chromedriver:chromium-driver)
if $with_ejabberd; then
	wanted+=(ejabberdctl:ejabberd)
fi

missing=()
# Packages without a binary of their own, checked with dpkg: lua-unbound lets Prosody resolve the
# s2s tests' domains through their own DNS server (internal/testenv/dns.go).
for pkg in lua-unbound; do
	if ! dpkg -s "$pkg" >/dev/null 2>&1; then
		missing+=("$pkg")
	fi
done
for pair in "${wanted[@]}"; do
	bin=${pair%%:*}
	pkg=${pair#*:}
	if ! command -v "$bin" >/dev/null 2>&1; then
		case " ${missing[*]-} " in
		*" $pkg "*) ;;
		*) missing+=("$pkg") ;;
		esac
	fi
done

if ((${#missing[@]} == 0)); then
	echo "deps.sh: all present ($(go version | awk '{print $3}'); ${wanted[*]%%:*} lua-unbound)"
	exit 0
fi

if ((EUID != 0)); then
	echo "deps.sh: missing packages: ${missing[*]}" >&2
	echo "deps.sh: install them with:" >&2
	echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}" >&2
	exit 1
fi

echo "deps.sh: installing ${missing[*]} from Debian's archive"
export DEBIAN_FRONTEND=noninteractive
apt_opts=(-o DPkg::Lock::Timeout=300 -q)

# ejabberd's postinst starts a system ejabberd (node ejabberd@localhost, epmd on *:4369, listeners on
# *:5222, 5223, 5269, 5280, 5443 and 1883). The tests never use it: internal/testenv runs its own
# nodes on free loopback ports with ERL_DIST_PORT (no epmd), their own node names and cookies, and
# they pass next to a running system ejabberd. But it does harm here: ejabberd exits when one of its
# ports is taken, and Prosody's system service holds 5222. Then, under sysvinit, the postinst waits
# 60 s for it and fails (and apt-get with it); under systemd the unit restarts every 5 s and keeps a
# core busy while the tests run. So while this script installs ejabberd, a temporary policy-rc.d
# (removed on exit) refuses to start it, and the unit is then disabled and stopped. An existing
# policy-rc.d (Docker images have one that refuses every start) is left as it is, and machines that
# had ejabberd already are not touched.
installing_ejabberd=false
case " ${missing[*]} " in *" ejabberd "*) installing_ejabberd=true ;; esac
policy=/usr/sbin/policy-rc.d
if $installing_ejabberd && [[ ! -e $policy ]]; then
	cat >"$policy" <<'POLICY'
#!/bin/sh
# Temporary: written by Starling's scripts/deps.sh while it installs ejabberd, removed when it ends.
# Refuses to start the system ejabberd; allows everything else. (invoke-rc.d calls this as
# "policy-rc.d [--quiet] ID ACTION [RUNLEVEL]", deb-systemd-invoke as "policy-rc.d UNIT ACTION".)
for arg in "$@"; do
	case "$arg" in
	-*) continue ;;
	ejabberd | ejabberd.service) exit 101 ;;
	*) exit 0 ;;
	esac
done
exit 0
POLICY
	chmod 0755 "$policy"
	trap 'rm -f "$policy"' EXIT
fi

apt-get "${apt_opts[@]}" update
apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}" </dev/null

if $installing_ejabberd; then
	if [[ -d /run/systemd/system ]]; then
		systemctl disable --now ejabberd.service >/dev/null 2>&1 || true
	else
		# Disables both the init script and the systemd unit's symlinks.
		update-rc.d ejabberd disable >/dev/null 2>&1 || true
		# Stop it only when an existing policy-rc.d let the postinst start it. Look for its node
		# (-sname ejabberd@...) rather than asking `ejabberdctl status`: that would start an epmd.
		if pgrep -u ejabberd -f -- '-sname ejabberd@' >/dev/null 2>&1; then
			/etc/init.d/ejabberd stop >/dev/null 2>&1 || true
		fi
	fi
	echo "deps.sh: the system ejabberd service is disabled; the tests start their own ejabberd nodes"
fi

for pair in "${wanted[@]}"; do
	bin=${pair%%:*}
	if ! command -v "$bin" >/dev/null 2>&1; then
		echo "deps.sh: $bin is still missing after installing ${pair#*:}" >&2
		exit 1
	fi
done
echo "deps.sh: installed ${missing[*]}"
