#!/bin/sh
# The README's first command:   sh quickstart.sh
# Installs lvscheck into ./.venv and runs its demo (two local web servers, one stops, its
# weight drops to 0). Works in a root shell (no sudo needed) and in a user shell: Debian
# packages are installed only when python3 or its venv module is missing, as root directly,
# else through sudo if there is one, else it says what to install and stops.
set -eu
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}

missing=
if ! command -v "$PYTHON" >/dev/null 2>&1; then
	missing="python3 python3-venv"
elif ! "$PYTHON" -c "import ensurepip, venv" >/dev/null 2>&1; then
	missing="python3-venv"
fi
if [ -n "$missing" ]; then
	if [ "$(id -u)" -eq 0 ]; then
		as_root=
	elif command -v sudo >/dev/null 2>&1; then
		as_root=sudo
	else
		echo "quickstart: install the Debian packages $missing first, as root:" >&2
		echo "    apt-get install -y $missing" >&2
		exit 1
	fi
	$as_root apt-get update -q
	# shellcheck disable=SC2086 # a list of package names
	$as_root apt-get install -y -q $missing
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
[ -x .venv/bin/lvscheck ] || .venv/bin/pip install -q .
exec .venv/bin/lvscheck demo "$@"
