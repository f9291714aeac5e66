#!/usr/bin/env bash
# Installs the Debian packages mlworkshop needs, only those that are missing.
# Runs as root (apt-get) or with sudo; a normal user without sudo gets the list to install.
set -euo pipefail
# chromium and libnss3-tools (certutil: the HTTPS test gives Chromium the site CA) are for the tests;
# (systemd-analyze, from the package systemd, checks `mlworkshop service` units where present; not
# installed here: it is no small package, and tests/ops/test_service.py skips those checks without it)
# slapd and ldap-utils: the sign-in tests start a private OpenLDAP of their own (tests/auth/conftest.py)
need=(nodejs npm python3-venv fonts-noto-cjk passwd chromium postgresql libnss3-tools slapd ldap-utils)
# iproute2 (ip netns) and git: the offline-room test clones the checkout and cuts the network
need+=(iproute2 git)
# containerd (with ctr): `mlworkshop images load --containerd` is tested against a private one
# (tests/containers/test_images_containerd.py); no daemon is started by installing it
need+=(containerd)
missing=()
for pkg in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# node/npm may come from elsewhere than Debian (nodesource): a working binary is enough.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
# python3-venv is only needed when the interpreter cannot make a venv on its own.
if /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null; then missing=("${missing[@]/python3-venv}"); fi
pkgs=()
for p in "${missing[@]}"; do [ -n "$p" ] && pkgs+=("$p"); done
[ ${#pkgs[@]} -eq 0 ] && exit 0
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "mlworkshop needs these Debian packages: ${pkgs[*]}" >&2
    echo "Install them as root: apt-get install -y ${pkgs[*]}" >&2
    exit 1
  fi
fi
echo "Installing Debian packages: ${pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
# Debian starts a system-wide slapd on install; nothing of mlworkshop uses it (tests run their own)
if [[ " ${pkgs[*]} " == *" slapd "* ]] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now slapd >/dev/null 2>&1 || true
fi
