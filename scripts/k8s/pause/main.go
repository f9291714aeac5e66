// Command pause is the process that holds a pod's namespaces (what registry.k8s.io/pause does):
// it sleeps until SIGINT or SIGTERM and, being PID 1 when the pod shares its PID namespace, reaps
// the children that are handed to it. No registry is reachable where the test cluster runs, so
// scripts/k8s-cluster.sh builds it statically and packs it into a local image.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
