#!/usr/bin/env bash
# scripts/deps.sh — make sure the system tools Starling's tests and `make run` need are installed.
#
#   scripts/deps.sh              prosody, redis-server (and curl, used by scripts/run.sh)
#   scripts/deps.sh --ejabberd   the same plus ejabberd
#
# Missing packages come from Debian's archive. As root the script runs `apt-get update` (once) and
# `apt-get install`; otherwise it prints the exact command to run and exits 1. It also checks that Go
# is installed (on PATH or in /usr/local/go/bin). Installing Debian's packages may start their system
# services on the default ports; nothing in this repository relies on those services or ports.
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
wanted=(prosody:prosody prosodyctl:prosody redis-server:redis-server redis-cli:redis-tools curl:curl)
if $with_ejabberd; then
	wanted+=(ejabberdctl:ejabberd)
fi

missing=()
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
	echo "deps.sh: all present ($(go version | awk '{print $3}'); ${wanted[*]%%:*})"
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
apt-get "${apt_opts[@]}" update
apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}" </dev/null

for pair in "${wanted[@]}"; do
	bin=${pair%%:*}
	if ! command -v "$bin" >/dev/null 2>&1; then
		echo "deps.sh: $bin is still missing after installing ${pair#*:}" >&2
		exit 1
	fi
done
echo "deps.sh: installed ${missing[*]}"
