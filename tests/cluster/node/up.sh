# The real node, sourced by tests/cluster/up --real-node once the API server is ready
# (see tests/cluster/README.md): containerd (its own root, state and socket under
# DIR/node), kubelet registered as node raum-node-0 with its own client certificate,
# a CNI bridge network and kube-proxy, all inside a network namespace of their own. A
# second namespace ("outside", for browsers and other clients) is joined to it by a
# veth pair:
#
#   outside ns  198.18.0.2/24 --veth-- 198.18.0.1/24  node ns (InternalIP)
#                                                     raum0 198.18.64.1/24 (pods)
#   Services: 198.19.0.0/24 (kube-proxy, in the node ns only)
#
# Every address is from 198.18.0.0/15 (reserved for network tests) and exists only in
# those namespaces; nothing is routed off the machine. The API server listens on
# loopback in the machine's own namespace: two socat processes carry it into the node
# namespace through a Unix socket, at 198.18.0.1:API_PORT (the address it advertises,
# so pods reach it through the `kubernetes` Service).
#
# Sourced, not run: the processes it starts are the supervising shell's children, like
# the control plane's (a script of its own would take their parent-death signal with
# it). It uses up's helpers (start, wait_for, fail, log, k) and variables (dir, pki,
# api_port, node_bin, images, here) and writes DIR/node/env for tests and for
# tests/cluster/node/down.

NODE=raum-node-0
NODE_IP=198.18.0.1
OUTSIDE_IP=198.18.0.2
POD_CIDR=198.18.64.0/24
# Names carry this script's pid, so parallel clusters do not collide and a sweep can
# tell a dead cluster's leftovers from a live one's.
tag=$$
node_ns=raum-$tag-node
out_ns=raum-$tag-out
cgroup_root=raum-$tag
n=$dir/node
mkdir -p "$n"/{containerd/root,containerd/state,cni,cni-ipam,kubelet,pod-logs,pki}

# What down needs to undo, written before anything is made.
cat > "$n/env" <<EOF
RAUM_NODE_NAME=$NODE
RAUM_NODE_IP=$NODE_IP
RAUM_NODE_NETNS=$node_ns
RAUM_OUTSIDE_NETNS=$out_ns
RAUM_OUTSIDE_IP=$OUTSIDE_IP
RAUM_NODE_CGROUP=$cgroup_root
RAUM_NODE_NETWORK=$cgroup_root
RAUM_NODE_CONTAINERD=$n/containerd.sock
RAUM_NODE_POD_CIDR=$POD_CIDR
EOF
# Registered, so a later sweep can tell this node (alive while its cluster's processes
# are) from one whose cluster was killed before its down ran.
mkdir -p /run/raum-nodes
ln -sfn "$dir" "/run/raum-nodes/$cgroup_root"

# --- network ----------------------------------------------------------------------
ip netns add "$node_ns"
ip netns add "$out_ns"
ip link add "rn${tag}n" netns "$node_ns" type veth peer name "rn${tag}o" netns "$out_ns"
inn() { nsenter --net="/run/netns/$node_ns" -- "$@"; }
ino() { nsenter --net="/run/netns/$out_ns" -- "$@"; }
inn ip link set lo up
ino ip link set lo up
inn ip addr add "$NODE_IP/24" dev "rn${tag}n"
ino ip addr add "$OUTSIDE_IP/24" dev "rn${tag}o"
inn ip link set "rn${tag}n" up
ino ip link set "rn${tag}o" up
# The outside reaches pods (a monitoring scrape) through the node.
ino ip route add "$POD_CIDR" via "$NODE_IP"
# Pods reach the outside namespace and back through the node (which routes and, for
# the bridge plugin's masquerade, NATs); bridged traffic passes iptables so Services
# work between pods on the same bridge.
inn sysctl -qw net.ipv4.ip_forward=1
inn sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null \
  || log "net.bridge.bridge-nf-call-iptables is not per namespace here; left as it is"

# --- certificates -----------------------------------------------------------------
sign_node() { # name subject ext
  ossl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$n/pki/$1.key" -out "$n/pki/$1.csr" -subj "$2"
  printf '%b\n' "$3" > "$n/pki/$1.ext"
  ossl x509 -req -in "$n/pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -days 3 -out "$n/pki/$1.crt" -extfile "$n/pki/$1.ext"
}
sign_node kubelet "/O=system:nodes/CN=system:node:$NODE" "extendedKeyUsage=clientAuth"
sign_node kubelet-serving "/CN=$NODE" "subjectAltName=IP:$NODE_IP,DNS:$NODE\nextendedKeyUsage=serverAuth"
sign_node kube-proxy "/CN=system:kube-proxy" "extendedKeyUsage=clientAuth"
for who in kubelet kube-proxy; do
  cat > "$n/$who.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: raum-test
  cluster:
    server: https://$NODE_IP:$api_port
    certificate-authority: $pki/ca.crt
users:
- name: $who
  user:
    client-certificate: $n/pki/$who.crt
    client-key: $n/pki/$who.key
contexts:
- name: raum-test
  context: {cluster: raum-test, user: $who}
current-context: raum-test
EOF
done

# --- processes --------------------------------------------------------------------

# The API server, carried into the node namespace.
start api-bridge socat "UNIX-LISTEN:$n/api.sock,fork,mode=600,unlink-early" \
  "TCP:127.0.0.1:$api_port"
wait_for 10 "the API bridge's socket" test -S "$n/api.sock"
start api-bridge-node nsenter --net="/run/netns/$node_ns" -- socat \
  "TCP-LISTEN:$api_port,bind=$NODE_IP,fork,reuseaddr" "UNIX-CONNECT:$n/api.sock"

# containerd: its own root, state and sockets; CNI from Debian's plugins; the sandbox
# image is ours (images), imported below.
cat > "$n/containerd.toml" <<EOF
version = 2
root = "$n/containerd/root"
state = "$n/containerd/state"
[grpc]
  address = "$n/containerd.sock"
[ttrpc]
  address = "$n/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$n/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/raum-test/pause:1"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$here/node/runc"
        Root = "$n/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$n/cni"
EOF
cat > "$n/cni/10-raum.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "$cgroup_root",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "raum0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$n/cni-ipam",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
start containerd nsenter --net="/run/netns/$node_ns" -- containerd --config "$n/containerd.toml"
ctr() { command ctr --address "$n/containerd.sock" "$@"; }
wait_for 30 "containerd" ctr version
for image in "$images"/*.tar; do
  ctr -n k8s.io images import "$image" > /dev/null \
    || fail "containerd could not import $image"
done

# kubelet: cgroup v1 (hybrid) hosts need failCgroupV1 false; cgroupfs, under a cgroup
# root of its own (which has to exist in every hierarchy; a new cpuset has no CPUs
# until given its parent's); its API only inside the node namespace.
for h in /sys/fs/cgroup/*/; do
  [ -d "$h" ] || continue
  mkdir -p "$h$cgroup_root"
  if [ -f "$h/cpuset.cpus" ]; then
    cat "$h/cpuset.cpus" > "$h$cgroup_root/cpuset.cpus"
    cat "$h/cpuset.mems" > "$h$cgroup_root/cpuset.mems"
  fi
done
cat > "$n/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$cgroup_root
containerRuntimeEndpoint: unix://$n/containerd.sock
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
tlsCertFile: $n/pki/kubelet-serving.crt
tlsPrivateKeyFile: $n/pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: AlwaysAllow}
failSwapOn: false
podLogsDir: $n/pod-logs
maxPods: 40
# This machine's disk and memory are the tests' too: evict only when really short,
# and never collect the imported images (they cannot be pulled again).
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
EOF
# kubelet sets a few kernel settings for the whole machine (panic on oops, memory
# overcommit, key quotas: not per namespace); the first node keeps what they were, and
# node/down puts them back when the last one goes.
if [ ! -f /run/raum-nodes/sysctl.saved ]; then
  for key in kernel.panic kernel.panic_on_oops vm.overcommit_memory vm.panic_on_oom \
      kernel.keys.root_maxkeys kernel.keys.root_maxbytes; do
    echo "$key=$(sysctl -n "$key")"
  done > /run/raum-nodes/sysctl.saved
fi
start kubelet nsenter --net="/run/netns/$node_ns" -- "$node_bin/kubelet" \
  --config "$n/kubelet.yaml" --kubeconfig "$n/kubelet.kubeconfig" \
  --root-dir "$n/kubelet" --hostname-override "$NODE" --node-ip "$NODE_IP" \
  --node-labels "type=real" --v=1

# kube-proxy: iptables in the node namespace; NodePorts on the node's address only.
cat > "$n/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $n/kube-proxy.kubeconfig}
hostnameOverride: $NODE
mode: iptables
clusterCIDR: $POD_CIDR
nodePortAddresses: ["$NODE_IP/32"]
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Leave the machine's conntrack table size and timeouts as they are.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
start kube-proxy nsenter --net="/run/netns/$node_ns" -- "$node_bin/kube-proxy" \
  --config "$n/kube-proxy.yaml" --v=1

node_ready() {
  [ "$(k get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}
wait_for 90 "node $NODE to be Ready" node_ready
log "node $NODE ready ($NODE_IP, namespace $node_ns; outside: $out_ns, $OUTSIDE_IP)"
