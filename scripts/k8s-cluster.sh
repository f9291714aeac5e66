#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, for the tests of the kubernetes backend
# (tests/k8s) and for trying it by hand. Root only.
#
#   scripts/k8s-cluster.sh build    build the binaries once (cached), the pause image
#   scripts/k8s-cluster.sh start    build if needed, start everything, wait until the node is Ready
#   scripts/k8s-cluster.sh stop     stop everything, remove the pods' containers, mounts, netns
#   scripts/k8s-cluster.sh status   each part running or not, the node's Ready condition (rc 0: up)
#   scripts/k8s-cluster.sh env      `export KUBECONFIG=...` lines for a running cluster (eval them)
#   scripts/k8s-cluster.sh load-image TAG   copy a podman image into the node's containerd
#   scripts/k8s-cluster.sh helm     build helm once (cached), print its path (tests/k8s/test_chart.py)
#
# What runs: etcd 3.6 and kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy 1.34
# built from the published Go modules (scripts/k8s/*/go.mod: k8s.io/kubernetes with each staging
# module replaced by its published v0.34.x; go.etcd.io/etcd/server/v3 through a wrapper main),
# containerd + runc + the CNI plugins from Debian, a bridge network with host-local addresses so
# pods get IPs the host reaches directly; kube-proxy (iptables, masquerading all Service traffic)
# and CoreDNS (on the host's address, built from the published github.com/coredns/coredns with
# only the plugins it needs) give pods Services and cluster DNS, as the Zero to JupyterHub chart's
# pods expect (hub, proxy-api by name; the API server as the `kubernetes` Service).
# Kubernetes 1.34 because newer kubelets refuse cgroup v1, and these machines are v1/v2 hybrid
# with no systemd as PID 1 (failCgroupV1: false, cgroupDriver: cgroupfs).
#
# Only one cluster runs per machine (the kubelet owns /kubepods in the cgroup tree); `start` on a
# running cluster reuses it. MLW_K8S_HOLDER=PID marks a user of the cluster (the test fixture):
# `start` registers it and `stop` removes it, stopping the cluster only when no other live holder
# is left and nobody started it by hand. A plain `stop` always stops it.
#
# Settings (environment):
#   MLW_K8S_CACHE   binaries, Go caches, the pause image (default /var/cache/mlworkshop-k8s);
#                   only the first build pays (~ see README "Kubernetes tests")
#   MLW_K8S_STATE   certificates, logs, etcd, kubelet, containerd's images (/var/lib/mlworkshop-k8s)
#   MLW_K8S_RUN     pids, sockets, containerd's state (default /run/mlworkshop-k8s)
#   MLW_K8S_NODE    the node's name (default mlw-k8s-node)
#   MLW_K8S_POD_SUBNET   the pods' addresses (default 10.244.0.0/24; the bridge is mlwk8s0)
#   MLW_K8S_BUILD_JOBS   go build -p (default 1: the machines are shared)
#   MLW_K8S_READY_TIMEOUT seconds to wait for the node to be Ready (default 180)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
MODULES="$HERE/k8s"
# the version a go.mod requires of a module (a `require` line or a line of a require block)
required() { awk -v m="$2" '$1 == "require" && $2 == m {print $3} $1 == m && $2 ~ /^v/ {print $2}' "$1" | head -1; }
K8S_VERSION=$(required "$MODULES/kubernetes/go.mod" k8s.io/kubernetes)
ETCD_VERSION=$(required "$MODULES/etcd/go.mod" go.etcd.io/etcd/server/v3)
[ -n "$K8S_VERSION" ] && [ -n "$ETCD_VERSION" ] || { echo "k8s-cluster: no versions in $MODULES/*/go.mod" >&2; exit 1; }
CACHE=${MLW_K8S_CACHE:-/var/cache/mlworkshop-k8s}
STATE=${MLW_K8S_STATE:-/var/lib/mlworkshop-k8s}
RUN=${MLW_K8S_RUN:-/run/mlworkshop-k8s}
NODE=${MLW_K8S_NODE:-mlw-k8s-node}
POD_SUBNET=${MLW_K8S_POD_SUBNET:-10.244.0.0/24}
BRIDGE=mlwk8s0
SERVICE_CIDR=10.96.0.0/16
BIN="$CACHE/$K8S_VERSION/bin"
PAUSE_IMAGE="localhost/mlworkshop-pause:1"
PKI="$STATE/pki"
LOGS="$STATE/logs"
SOCK="$RUN/containerd/containerd.sock"
KUBECONFIG_ADMIN="$STATE/admin.kubeconfig"
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy coredns)
# what the kubelet sets at start (vm.overcommit_memory=1, kernel.panic=10 ...); put back at stop
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

say() { echo "k8s-cluster: $*" >&2; }
die() { say "$*"; exit 1; }
# exit status 3: this machine cannot host the cluster (tests/k8s skip with the message, not fail)
cannot() { say "$*"; exit 3; }

need_root() { [ "$(id -u)" -eq 0 ] || cannot "run it as root (it starts a kubelet and containerd)"; }

go_env() {
  # private module and build caches: a cold build is really cold, and removing $CACHE resets it
  export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOTOOLCHAIN=local CGO_ENABLED=0
  export GOFLAGS="-buildvcs=false -trimpath -mod=readonly -p=${MLW_K8S_BUILD_JOBS:-1}"
}

# ---------------------------------------------------------------------------------------- build
build_stamp() {
  # what the binaries depend on: the module files, this script's build recipe and Go's version
  # (not helm's module: `helm` builds it apart, and it is not the cluster's)
  local m
  { for m in kubernetes etcd coredns pause; do
      cat "$MODULES/$m"/go.mod "$MODULES/$m"/go.sum "$MODULES/$m"/*.go 2>/dev/null || true
    done
    go version; sed -n '/^build_binaries()/,/^}/p' "$HERE/k8s-cluster.sh"; } | sha256sum | cut -c1-16
}

build_binaries() {
  local ld out tmp start
  command -v go >/dev/null || cannot "Go is missing: install Go >= 1.24 (https://go.dev/dl) to build the cluster"
  go_env
  local mod
  for mod in kubernetes etcd coredns; do
    (cd "$MODULES/$mod" && nice -n 19 go mod download) \
      || cannot "could not download the Go modules of scripts/k8s/$mod (GOPROXY=$(go env GOPROXY))"
  done
  local date; date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  done
  tmp="$CACHE/$K8S_VERSION/bin.tmp"
  rm -rf "$tmp"; mkdir -p "$tmp"
  start=$(date +%s)
  say "building Kubernetes $K8S_VERSION (apiserver, controller-manager, scheduler, kubelet, kube-proxy,"
  say "  kubectl), etcd $ETCD_VERSION and CoreDNS from the Go module proxy; the first time takes a while (nice 19)"
  (cd "$MODULES/kubernetes" && nice -n 19 go build -tags providerless -ldflags "$ld" -o "$tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubectl \
    k8s.io/kubernetes/cmd/kube-proxy) \
    || die "building Kubernetes failed (see above)"
  (cd "$MODULES/etcd" && nice -n 19 go build -ldflags "-s -w" -o "$tmp/etcd" .) \
    || die "building etcd failed (see above)"
  (cd "$MODULES/coredns" && nice -n 19 go build -ldflags "-s -w" -o "$tmp/coredns" .) \
    || die "building CoreDNS failed (see above)"
  (cd "$MODULES/pause" && nice -n 19 go build -ldflags "-s -w" -o "$tmp/pause" .) \
    || die "building pause failed (see above)"
  oci_archive "$tmp/pause" "$tmp/pause-image.tar"
  echo "$(( $(date +%s) - start ))" > "$tmp/build-seconds"
  build_stamp > "$tmp/stamp"
  rm -rf "$BIN"; mv "$tmp" "$BIN"
  say "built in $(cat "$BIN/build-seconds") s into $BIN:"
  (cd "$BIN" && du -h kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl etcd coredns pause >&2)
}

oci_archive() {
  # An OCI image archive holding only the pause binary (no registry is reachable for
  # registry.k8s.io/pause); `ctr images import` names it from the io.containerd.image.name
  # annotation.
  python3 - "$1" "$2" "$PAUSE_IMAGE" "$(go env GOARCH)" <<'PY'
import hashlib, io, json, sys, tarfile
binary, out, name, arch = sys.argv[1:5]
blobs = {}
def blob(data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"digest": digest, "size": len(data)}
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as tar:
    data = open(binary, "rb").read()
    info = tarfile.TarInfo("pause"); info.size = len(data); info.mode = 0o755
    tar.addfile(info, io.BytesIO(data))
layer = layer.getvalue()
layer_desc = {"mediaType": "application/vnd.oci.image.layer.v1.tar", **blob(layer)}
config = {"architecture": arch, "os": "linux",
          "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
          "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]}}
config_desc = {"mediaType": "application/vnd.oci.image.config.v1+json",
               **blob(json.dumps(config).encode())}
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_desc, "layers": [layer_desc]}
manifest_desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                 **blob(json.dumps(manifest).encode()),
                 "annotations": {"io.containerd.image.name": name,
                                 "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]},
                 "platform": {"architecture": arch, "os": "linux"}}
index = {"schemaVersion": 2, "manifests": [manifest_desc]}
with tarfile.open(out, "w") as tar:
    def add(path, data):
        info = tarfile.TarInfo(path); info.size = len(data); info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
    add("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
    for digest, data in blobs.items():
        add("blobs/sha256/" + digest.split(":")[1], data)
    add("index.json", json.dumps(index).encode())
PY
}

built() {
  # the binaries in $BIN match the module files (without Go: whatever was built before)
  [ -f "$BIN/stamp" ] || return 1
  command -v go >/dev/null || return 0
  [ "$(cat "$BIN/stamp")" = "$(build_stamp)" ]
}

cmd_build() {
  # build [--check]: --check only answers (rc 0: nothing to build)
  if [ "${1:-}" = --check ]; then built; return; fi
  need_root
  mkdir -p "$CACHE"
  exec 8>"$CACHE/build.lock"
  flock 8
  if [ -f "$BIN/stamp" ] && ! command -v go >/dev/null; then
    say "Go is missing: using the binaries built before in $BIN"
    return 0
  fi
  if [ -f "$BIN/stamp" ] && [ "$(cat "$BIN/stamp")" = "$(build_stamp)" ]; then
    say "binaries are up to date in $BIN (built in $(cat "$BIN/build-seconds" 2>/dev/null || echo ?) s)"
    return 0
  fi
  build_binaries
}

# ------------------------------------------------------------------------------------ processes
pid_of() { local f="$RUN/$1.pid"; [ -f "$f" ] && cat "$f" || true; }
alive() { local p; p=$(pid_of "$1"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

launch() {
  # launch NAME CMD...: in its own session, its log in $LOGS/NAME.log, its pid in $RUN/NAME.pid
  local name=$1; shift
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 8>&- 9>&- &
  echo $! > "$RUN/$name.pid"
}

halt() {
  # halt NAME: SIGTERM, then SIGKILL after 15 s
  local name=$1 pid i
  pid=$(pid_of "$name")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN/$name.pid"
}

wait_for() {
  # wait_for WHAT SECONDS NAME CMD...: until CMD succeeds; NAME's log tail if it dies or times out
  local what=$1 secs=$2 name=$3 deadline; shift 3
  deadline=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    if ! alive "$name"; then
      say "$name exited while waiting for $what; the end of $LOGS/$name.log:"
      tail -25 "$LOGS/$name.log" >&2; return 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      say "$what: not after $secs s; the end of $LOGS/$name.log:"
      tail -25 "$LOGS/$name.log" >&2; return 1
    fi
    sleep 0.2
  done
}

free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
held = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); held.append(s)
print(" ".join(str(s.getsockname()[1]) for s in held))
PY
}

host_ip() {
  ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -1
}

# ---------------------------------------------------------------------------------- certificates
pki_cert() {
  # pki_cert NAME SUBJECT EXTENSIONS: an EC key and a certificate signed by the cluster's CA
  local name=$1 subject=$2 ext=$3
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$name.key" 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subject" -out "$PKI/$name.csr" 2>/dev/null
  printf '%b\n' "$ext" > "$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

make_pki() {
  local ip=$1 client="basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth"
  # regenerated when the node's name or address changed (both are in the certificates)
  if [ -f "$PKI/for" ] && [ "$(cat "$PKI/for")" = "$NODE $ip" ] && [ -f "$PKI/kube-proxy.crt" ]; then
    return 0
  fi
  rm -rf "$PKI"; mkdir -p "$PKI"; chmod 700 "$PKI"
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/ca.key" 2>/dev/null
  printf '[req]\ndistinguished_name=dn\nx509_extensions=ca\n[dn]\n[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\n' > "$PKI/ca.cnf"
  openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=mlworkshop-k8s-ca" -days 3650 \
    -config "$PKI/ca.cnf" -out "$PKI/ca.crt" 2>/dev/null
  pki_cert apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1,IP:$ip"
  pki_cert admin "/O=system:masters/CN=mlworkshop-admin" "$client"
  pki_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
  pki_cert controller-manager "/CN=system:kube-controller-manager" "$client"
  pki_cert scheduler "/CN=system:kube-scheduler" "$client"
  pki_cert kubelet "/O=system:nodes/CN=system:node:$NODE" "$client"
  pki_cert kube-proxy "/CN=system:kube-proxy" "$client"  # the system:node-proxier binding's user
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/sa.key" 2>/dev/null
  openssl ec -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  chmod 600 "$PKI"/*.key
  echo "$NODE $ip" > "$PKI/for"
}

kubeconfig() {
  # kubeconfig FILE CERTNAME SERVER: a kubeconfig with the certificates embedded
  local file=$1 who=$2 server=$3
  umask 077
  cat > "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: mlworkshop-k8s
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $who
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$who.crt")
    client-key-data: $(base64 -w0 "$PKI/$who.key")
contexts:
- name: mlworkshop-k8s
  context: {cluster: mlworkshop-k8s, user: $who}
current-context: mlworkshop-k8s
EOF
  umask 022
}

# -------------------------------------------------------------------------------------- configs
write_configs() {
  local kubelet_port=$1 healthz_port=$2 ip=$3 dns_health=$4
  mkdir -p "$RUN/containerd" "$RUN/cni/net.d" "$RUN/cni/ipam" "$RUN/coredns" "$STATE/containerd" "$STATE/kubelet"
  cat > "$RUN/containerd/config.toml" <<EOF
# Written by scripts/k8s-cluster.sh: a containerd of its own for the test cluster's kubelet.
version = 2
root = "$STATE/containerd"
state = "$RUN/containerd/state"
[grpc]
  address = "$SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  # these machines withhold CAP_SYS_RESOURCE even from root: a pod's oom_score_adj (-998 for the
  # sandbox) below containerd's own made runc fail ("can't get final child's PID from pipe: EOF")
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$(command -v runc)"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$RUN/cni/net.d"
EOF
  local gateway=${POD_SUBNET%/*}; gateway=${gateway%.*}.1
  cat > "$RUN/cni/net.d/10-mlw-k8s.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "mlw-k8s",
  "plugins": [
    {
      "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$RUN/cni/ipam",
        "ranges": [[{"subnet": "$POD_SUBNET", "gateway": "$gateway"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
EOF
  cat > "$STATE/kubelet.yaml" <<EOF
# Written by scripts/k8s-cluster.sh.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$SOCK
imageServiceEndpoint: unix://$SOCK
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $healthz_port
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
failSwapOn: false
resolvConf: /etc/resolv.conf
# CoreDNS on the host's address (pods reach it through their gateway)
clusterDNS: [$ip]
clusterDomain: cluster.local
# a shared test machine: never evict for disk, never delete the images imported by hand
evictionHard: {memory.available: 50Mi, nodefs.available: 1%, nodefs.inodesFree: 1%, imagefs.available: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
EOF
  cat > "$RUN/coredns/Corefile" <<EOF
# Written by scripts/k8s-cluster.sh: the cluster's DNS (Services and pods under cluster.local);
# other names go to this machine's own resolvers.
.:53 {
    bind $ip
    errors
    health 127.0.0.1:$dns_health
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $KUBECONFIG_ADMIN mlworkshop-k8s
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 30
    forward . /etc/resolv.conf
}
EOF
}

# ---------------------------------------------------------------------------------------- start
preflight() {
  need_root
  local missing=()
  for tool in containerd ctr runc openssl python3 ip flock; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  CNI_BIN=""
  for dir in /usr/lib/cni /opt/cni/bin; do [ -x "$dir/bridge" ] && [ -x "$dir/host-local" ] && CNI_BIN=$dir && break; done
  [ -n "$CNI_BIN" ] || missing+=(containernetworking-plugins)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "${MLW_K8S_NO_INSTALL:-0}" = 1 ]; then
      die "missing: ${missing[*]}; install: apt-get install -y containerd runc containernetworking-plugins"
    fi
    say "installing containerd runc containernetworking-plugins (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      containerd runc containernetworking-plugins; } >&2 \
      || die "apt-get could not install containerd runc containernetworking-plugins"
    MLW_K8S_NO_INSTALL=1 preflight
  fi
}

holders_live() {
  # the holders whose process still runs ("manual" counts always); stale ones are removed
  local f
  for f in "$RUN"/holders/*; do
    [ -e "$f" ] || continue
    case ${f##*/} in
      manual) echo manual ;;
      *) if kill -0 "${f##*/}" 2>/dev/null; then echo "${f##*/}"; else rm -f "$f"; fi ;;
    esac
  done
}

register_holder() {
  mkdir -p "$RUN/holders"
  touch "$RUN/holders/${MLW_K8S_HOLDER:-manual}"
}

cmd_start() {
  need_root
  if [ "${MLW_K8S_NO_BUILD:-0}" = 1 ] && ! built; then
    cannot "the cluster's binaries are not built: run scripts/k8s-cluster.sh build (long, once)"
  fi
  preflight
  mkdir -p "$RUN" "$STATE" "$LOGS"
  exec 9>"$RUN/lock"
  flock 9
  if running_all && node_ready; then
    register_holder
    say "already running (node $NODE Ready); KUBECONFIG=$KUBECONFIG_ADMIN"
    return 0
  fi
  local t0; t0=$(date +%s.%N)
  stop_all
  cmd_build
  local ip; ip=$(host_ip)
  [ -n "$ip" ] || die "this machine has no IPv4 address with a route (the node needs one)"
  local etcd_port etcd_peer api_port kubelet_port healthz_port proxy_health proxy_metrics dns_health
  read -r etcd_port etcd_peer api_port kubelet_port healthz_port proxy_health proxy_metrics dns_health \
    <<<"$(free_ports 8)"
  make_pki "$ip"
  local api="https://127.0.0.1:$api_port"
  kubeconfig "$KUBECONFIG_ADMIN" admin "$api"
  kubeconfig "$STATE/controller-manager.kubeconfig" controller-manager "$api"
  kubeconfig "$STATE/scheduler.kubeconfig" scheduler "$api"
  kubeconfig "$STATE/kubelet.kubeconfig" kubelet "$api"
  kubeconfig "$STATE/kube-proxy.kubeconfig" kube-proxy "$api"
  # a fresh cluster each start: no pods, namespaces or nodes left from the last one
  rm -rf "$STATE/etcd"
  safe_wipe "$STATE/kubelet"
  write_configs "$kubelet_port" "$healthz_port" "$ip" "$dns_health"
  : > "$RUN/sysctl.saved"
  for s in "${SYSCTLS[@]}"; do echo "$s=$(sysctl -n "$s")" >> "$RUN/sysctl.saved"; done

  launch etcd "$BIN/etcd" --name mlw --data-dir "$STATE/etcd" --unsafe-no-fsync \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "mlw=http://127.0.0.1:$etcd_peer" --log-level warn
  wait_for "etcd to answer" 60 etcd curl -sf "http://127.0.0.1:$etcd_port/health" || fail_start

  launch kube-apiserver "$BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 0.0.0.0 --secure-port "$api_port" --advertise-address "$ip" \
    --service-cluster-ip-range "$SERVICE_CIDR" --allow-privileged=true \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --client-ca-file "$PKI/ca.crt" --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --kubelet-preferred-address-types InternalIP,Hostname \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --profiling=false --v=1
  wait_for "kube-apiserver to be ready" 120 kube-apiserver curl -sf --cacert "$PKI/ca.crt" \
    --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$api/readyz" || fail_start

  launch kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig "$STATE/controller-manager.kubeconfig" \
    --secure-port 0 --leader-elect=false --use-service-account-credentials \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" --v=1
  launch kube-scheduler "$BIN/kube-scheduler" --kubeconfig "$STATE/scheduler.kubeconfig" \
    --secure-port 0 --leader-elect=false --v=1

  # Services: the `kubernetes` one (pods' in-cluster API, at $ip:$api_port) and the chart's;
  # masquerade-all so replies between pods on the bridge come back through the host's NAT
  launch kube-proxy "$BIN/kube-proxy" --kubeconfig "$STATE/kube-proxy.kubeconfig" \
    --hostname-override "$NODE" --proxy-mode iptables --masquerade-all --cluster-cidr "$POD_SUBNET" \
    --healthz-bind-address "127.0.0.1:$proxy_health" --metrics-bind-address "127.0.0.1:$proxy_metrics" \
    --conntrack-max-per-core 0 --v=1
  launch coredns "$BIN/coredns" -conf "$RUN/coredns/Corefile"
  wait_for "CoreDNS to answer" 60 coredns curl -sf "http://127.0.0.1:$dns_health/health" || fail_start

  launch containerd containerd --config "$RUN/containerd/config.toml"
  wait_for "containerd to answer" 60 containerd ctr --address "$SOCK" version || fail_start 3
  ctr --address "$SOCK" -n k8s.io images import "$BIN/pause-image.tar" >/dev/null \
    || { say "importing the pause image failed"; fail_start; }

  launch kubelet "$BIN/kubelet" --config "$STATE/kubelet.yaml" --kubeconfig "$STATE/kubelet.kubeconfig" \
    --hostname-override "$NODE" --node-ip "$ip" --root-dir "$STATE/kubelet" --v=1
  cat > "$RUN/cluster.env" <<EOF
KUBECONFIG=$KUBECONFIG_ADMIN
MLW_K8S_API=$api
MLW_K8S_NODE=$NODE
MLW_K8S_NODE_IP=$ip
MLW_K8S_POD_SUBNET=$POD_SUBNET
MLW_K8S_CONTAINERD=$SOCK
MLW_K8S_BIN=$BIN
MLW_K8S_VERSION=$K8S_VERSION
EOF
  # the kubelet is what may not run on a machine (cgroups, kernel): that is a "cannot run here"
  wait_for "node $NODE to be Ready" "${MLW_K8S_READY_TIMEOUT:-180}" kubelet node_ready || fail_start 3
  register_holder
  python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t0" "$(date +%s.%N)" > "$RUN/start-seconds"
  say "node $NODE Ready in $(cat "$RUN/start-seconds") s; KUBECONFIG=$KUBECONFIG_ADMIN (scripts/k8s-cluster.sh env)"
}

fail_start() {
  say "the cluster did not start; stopping what did (logs stay in $LOGS)"
  stop_all
  exit "${1:-1}"
}

kubectl_() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

node_ready() {
  # Ready, and the controller-manager has lifted the not-ready taint (pods can be scheduled)
  [ -x "$BIN/kubectl" ] && [ -f "$KUBECONFIG_ADMIN" ] || return 1
  [ "$(kubectl_ get node "$NODE" --request-timeout 5s -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}/{.spec.taints[*].key}' 2>/dev/null)" = True/ ]
}

running_all() {
  local c
  for c in "${COMPONENTS[@]}"; do alive "$c" || return 1; done
}

# ----------------------------------------------------------------------------------------- stop
stop_all() {
  local c id ids netns=""
  halt kubelet
  if alive containerd; then
    # the pods' containers and sandboxes outlive containerd's own process: kill them; their
    # network namespaces (pinned under /var/run/netns) are named in the sandboxes' specs
    ids=$(ctr --address "$SOCK" -n k8s.io containers ls -q 2>/dev/null || true)
    for id in $ids; do
      netns+=" $(ctr --address "$SOCK" -n k8s.io containers info "$id" 2>/dev/null \
        | grep -o '"/var/run/netns/cni-[0-9a-f-]*"' | tr -d '"' || true)"
      ctr --address "$SOCK" -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
    done
    for id in $ids; do
      for _ in $(seq 1 50); do
        ctr --address "$SOCK" -n k8s.io tasks ls -q 2>/dev/null | grep -qxF "$id" || break
        ctr --address "$SOCK" -n k8s.io tasks delete "$id" >/dev/null 2>&1 && break
        sleep 0.1
      done
      ctr --address "$SOCK" -n k8s.io containers delete "$id" >/dev/null 2>&1 || true
    done
  fi
  kill_cgroup_leftovers
  halt containerd
  halt coredns
  if alive kube-proxy; then
    halt kube-proxy
    "$BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true  # its KUBE-* iptables chains
  fi
  for c in kube-scheduler kube-controller-manager kube-apiserver etcd; do halt "$c"; done
  for id in $netns; do
    umount "$id" 2>/dev/null || umount -l "$id" 2>/dev/null || true
    rm -f "$id"
  done
  unmount_under "$STATE/kubelet"
  unmount_under "$RUN/containerd"
  ip link show "$BRIDGE" >/dev/null 2>&1 && ip link delete "$BRIDGE" 2>/dev/null || true
  if [ -f "$RUN/sysctl.saved" ]; then
    sysctl -q -p "$RUN/sysctl.saved" >/dev/null 2>&1 || true
    rm -f "$RUN/sysctl.saved"
  fi
  rm -f "$RUN/cluster.env" "$RUN/start-seconds"
  rm -rf "$RUN/holders" "$RUN/cni"
  drop_kubelet_chains
}

drop_kubelet_chains() {
  # the kubelet's own iptables chains outlive it (KUBE-FIREWALL drops traffic to 127.0.0.0/8 that
  # does not come from it; the KUBE-KUBELET-CANARY chains): the host is left as it was found
  local cmd table rule chain chains
  for cmd in iptables ip6tables; do
    command -v "$cmd" >/dev/null || continue
    for table in filter nat mangle; do
      "$cmd" -t "$table" -S 2>/dev/null | grep -E '^-A [A-Z]+ .*-j KUBE-' | sed 's/^-A /-D /' \
        | while read -r rule; do eval "\"\$cmd\" -t \"\$table\" $rule" 2>/dev/null || true; done \
        || true  # none: grep finds nothing
      chains=$("$cmd" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}')
      for chain in $chains; do "$cmd" -t "$table" -F "$chain" 2>/dev/null || true; done
      for chain in $chains; do "$cmd" -t "$table" -X "$chain" 2>/dev/null || true; done
    done
  done
}

mounts_under() {
  # the mount points at or under $1, deepest first
  awk -v d="$1" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo | sort -r
}

unmount_under() {
  local m
  for m in $(mounts_under "$1"); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
}

safe_wipe() {
  # rm -rf a folder the kubelet mounted volumes into, only once nothing is mounted under it:
  # a local PersistentVolume is a bind mount of a student's folder there
  unmount_under "$1"
  if [ -n "$(mounts_under "$1")" ]; then
    die "still mounted under $1 (not removed, so no volume's files are lost): $(mounts_under "$1" | tr '\n' ' ')"
  fi
  rm -rf "$1"
}

kill_cgroup_leftovers() {
  # processes left in the kubelet's pod cgroups (a kubelet killed hard): kill, then remove the
  # cgroups so the next kubelet starts clean
  local hier pid dir
  for hier in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods /sys/fs/cgroup/unified/kubepods; do
    [ -d "$hier" ] || continue
    for pid in $(find "$hier" -name cgroup.procs -exec cat {} + 2>/dev/null); do
      kill -KILL "$pid" 2>/dev/null || true
    done
  done
  for hier in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods /sys/fs/cgroup/unified/kubepods; do
    [ -d "$hier" ] || continue
    for dir in $(find "$hier" -depth -type d 2>/dev/null); do rmdir "$dir" 2>/dev/null || true; done
  done
}

cmd_stop() {
  need_root
  mkdir -p "$RUN"
  exec 9>"$RUN/lock"
  flock 9
  if [ -n "${MLW_K8S_HOLDER:-}" ]; then
    rm -f "$RUN/holders/$MLW_K8S_HOLDER"
    local left; left=$(holders_live | tr '\n' ' ')
    if [ -n "$left" ]; then
      say "still used by: $left- left running"
      return 0
    fi
  fi
  stop_all
  say "stopped"
}

# --------------------------------------------------------------------------------------- status
cmd_status() {
  local c up=0
  for c in "${COMPONENTS[@]}"; do
    if alive "$c"; then printf '%-24s running (pid %s)\n' "$c" "$(pid_of "$c")"
    else printf '%-24s stopped\n' "$c"; up=1; fi
  done
  if node_ready; then echo "node $NODE: Ready"; else echo "node $NODE: not Ready"; up=1; fi
  [ -f "$RUN/cluster.env" ] && sed 's/^/  /' "$RUN/cluster.env"
  return $up
}

cmd_env() {
  [ -f "$RUN/cluster.env" ] || die "the cluster is not running (scripts/k8s-cluster.sh start)"
  sed 's/^/export /' "$RUN/cluster.env"
}

cmd_load_image() {
  need_root
  local tag=${1:-}
  [ -n "$tag" ] || die "usage: scripts/k8s-cluster.sh load-image TAG (a podman image)"
  alive containerd || die "the cluster is not running (scripts/k8s-cluster.sh start)"
  if ctr --address "$SOCK" -n k8s.io images ls -q | grep -qxF "$tag"; then
    say "$tag is already on the node"; return 0
  fi
  local conf=/run/mlworkshop-podman/containers.conf tmp
  [ -f "$conf" ] && export CONTAINERS_CONF=$conf
  tmp=$(mktemp -d /tmp/mlw-k8s-image.XXXXXX)
  trap 'rm -rf "$tmp"' RETURN
  podman save -o "$tmp/image.tar" "$tag" >/dev/null || die "podman save $tag failed"
  ctr --address "$SOCK" -n k8s.io images import "$tmp/image.tar" >/dev/null || die "importing $tag failed"
  say "loaded $tag into the node's containerd"
}

cmd_helm() {
  # helm from the published helm.sh/helm/v3 (scripts/k8s/helm/go.mod), built once; prints its path
  command -v go >/dev/null || cannot "Go is missing: install Go to build helm"
  local version; version=$(required "$MODULES/helm/go.mod" helm.sh/helm/v3)
  local out="$CACHE/helm-$version/helm"
  if [ ! -x "$out" ]; then
    mkdir -p "$CACHE"
    go_env
    say "building helm $version from the Go module proxy (once, ~3 minutes)"
    (cd "$MODULES/helm" && nice -n 19 go build -ldflags "-s -w" -o "$out.tmp" helm.sh/helm/v3/cmd/helm) \
      || die "building helm failed (see above)"
    mv "$out.tmp" "$out"
  fi
  echo "$out"
}

case "${1:-}" in
  build) shift; cmd_build "$@" ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  load-image) shift; cmd_load_image "$@" ;;
  helm) cmd_helm ;;
  *) echo "usage: $0 build|start|stop|status|env|load-image TAG|helm" >&2; exit 2 ;;
esac
