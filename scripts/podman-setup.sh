#!/usr/bin/env bash
# Makes podman usable as the Docker engine on this machine (see shared/CONTAINERS.md):
#   1. installs podman, runc, debootstrap and podman-compose when missing (apt-get, as root);
#   2. writes a containers.conf that works without systemd and on hybrid cgroups;
#   3. starts `podman system service` on a Docker-compatible socket unless one already answers.
# Idempotent. Prints the socket URL on its last line (unix:///...), so callers can do
#   url=$(bash scripts/podman-setup.sh | tail -1)
# Settings (environment):
#   MLW_PODMAN_DIR   folder for containers.conf, the socket, the pid file and the service log
#                    (default /run/mlworkshop-podman as root, else $XDG_RUNTIME_DIR/mlworkshop-podman)
#   MLW_PODMAN_NO_INSTALL=1   never call apt-get (fail instead when podman is missing)
set -euo pipefail

if [ "$(id -u)" -eq 0 ]; then
  dir=${MLW_PODMAN_DIR:-/run/mlworkshop-podman}
else
  dir=${MLW_PODMAN_DIR:-${XDG_RUNTIME_DIR:-/tmp/mlworkshop-podman-$(id -u)}/mlworkshop-podman}
fi
mkdir -p "$dir"
chmod 0711 "$dir"
sock="$dir/podman.sock"
conf="$dir/containers.conf"

# 1. packages
need=()
for tool in podman runc debootstrap podman-compose; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  if [ "${MLW_PODMAN_NO_INSTALL:-0}" = 1 ] || [ "$(id -u)" -ne 0 ]; then
    echo "podman-setup: missing ${need[*]}; install them as root: apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  echo "podman-setup: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

# 2. containers.conf (crun fails on hybrid cgroups, systemd is not PID 1, rlimits may be locked)
cat > "$conf.tmp" <<'CONF'
# Written by mlworkshop scripts/podman-setup.sh; point CONTAINERS_CONF at this file.
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
exit_command_delay = 5
CONF
mv "$conf.tmp" "$conf"
export CONTAINERS_CONF="$conf"

# 3. the Docker-compatible socket
answers() {
  [ -S "$sock" ] && python3 - "$sock" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(3); s.connect(sys.argv[1])
s.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
sys.exit(0 if b"OK" in s.recv(4096) else 1)
PY
}
# a service left by an earlier run from a folder since removed answers but cannot start any
# container (conmon: "Failed to get working directory"): stop it, a fresh one starts below
for pid in $(pgrep -f "podman system service --time=0 unix://$sock" || true); do
  if readlink "/proc/$pid/cwd" 2>/dev/null | grep -q ' (deleted)$'; then
    echo "podman-setup: the podman service (pid $pid) runs in a removed folder: restarting it" >&2
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$sock"
  fi
done
if ! answers; then
  rm -f "$sock"
  # from / : the service outlives this run, and conmon cannot start a container once the folder
  # it was started in is gone (a removed clone broke every later run: "Failed to get working
  # directory")
  (cd / && exec setsid nohup podman system service --time=0 "unix://$sock" >>"$dir/service.log" 2>&1 < /dev/null) &
  echo $! > "$dir/service.pid"
  for _ in $(seq 1 100); do answers && break; sleep 0.1; done
  if ! answers; then
    echo "podman-setup: podman system service did not answer on $sock; its log:" >&2
    tail -20 "$dir/service.log" >&2
    exit 1
  fi
  echo "podman-setup: podman system service listening on $sock (pid $(cat "$dir/service.pid"))" >&2
fi
echo "CONTAINERS_CONF=$conf" >&2
echo "unix://$sock"
