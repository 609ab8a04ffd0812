#!/usr/bin/env bash
# Installs what the tests need on a fresh machine (Debian's Chromium, Node.js if missing,
# the Python test and model extras), builds dist/, and runs every test. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  local runner=()
  [ "$(id -u)" -eq 0 ] || runner=(sudo)
  "${runner[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${runner[@]}" apt-get install -y -qq "$@" >/dev/null
}

[ -x /usr/bin/chromium ] || apt_install chromium
command -v npm >/dev/null || apt_install nodejs npm

python3 -m pip install --quiet --disable-pip-version-check -e '.[test,model]'
python3 build.py
exec python3 -m pytest "$@"
