// Command etcd is etcd's own server command (what go.etcd.io/etcd/server/v3's main does), built
// from the published module for the test cluster of scripts/k8s-cluster.sh.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
