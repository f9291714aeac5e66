// The pod sandbox's process for the test cluster (no registry is reachable for registry.k8s.io/pause).
module mlworkshop.invalid/k8s-cluster/pause

go 1.24.0
