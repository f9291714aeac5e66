// CoreDNS for the test cluster (scripts/k8s-cluster.sh): cluster DNS for its pods, run on the
// host beside the kubelet, built from the published github.com/coredns/coredns module with only
// the plugins the cluster's Corefile uses (CoreDNS's documented way to trim a build: set
// dnsserver.Directives in a main package of one's own).
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
)

func init() {
	// the order the plugins act in a server block (a sub-list of CoreDNS's plugin.cfg order)
	dnsserver.Directives = []string{
		"bind", "health", "ready", "errors", "cache", "loop", "kubernetes", "forward",
	}
}

func main() {
	coremain.Run()
}
