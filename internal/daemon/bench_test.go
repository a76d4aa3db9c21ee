package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// BenchmarkUpdatePass is one pod's event on the event path, from its file
// to its route in a fake kernel, at the log level a node runs: an
// allocation of host-local (the address is the file's name), and a cache
// entry of a static-IPAM network (the address only in its cached result,
// as for whereabouts and dhcp). Its allocations per pass set how often the
// collector runs on a node where pods come and go (GOGC 50: after about
// 1 MB at a small node's heap), and a pass that meets a collection is a
// slow one.
func BenchmarkUpdatePass(b *testing.B) {
	const nad = `{"cniVersion": "1.0.0", "name": "astatic", "plugins": [{"type": "macvlan", "master": "eno1", "ipam": {"type": "static"}}]}`
	entry := func(cid, addr string) string {
		return fmt.Sprintf(`{"kind":"cniCacheV1","containerId":%q,"config":%q,"ifName":"net1","networkName":"astatic","netns":"/proc/self/ns/net",`+
			`"result":{"cniVersion":"1.0.0","interfaces":[{"name":"net1","mac":"02:00:00:00:00:01","sandbox":"/proc/self/ns/net"}],"ips":[{"address":"%s/16","interface":0}]}}`,
			cid, b64(nad), addr)
	}
	for _, kind := range []string{"host-local", "cache entry"} {
		b.Run(kind, func(b *testing.B) {
			r := newRig(b)
			r.d.opts.Level.Set(slog.LevelInfo)
			results := filepath.Join(r.cacheDir, "results")
			r.write(b, filepath.Join(results, "astatic-c0-net1"), entry("c0", "192.168.200.1"))
			r.settle(b)
			r.step()
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				// Untimed: the pod's file written, and the previous pod's
				// released, so that every pass finds the same number of
				// routes.
				b.StopTimer()
				n++
				ip := fmt.Sprintf("192.168.1.%d", 2+n%2) // host-local's range
				var dir, name string
				if kind == "host-local" {
					dir, name = r.stateDir, ip
					r.write(b, filepath.Join(dir, name), fmt.Sprintf("c%d\r\neth0", n))
				} else {
					ip = fmt.Sprintf("192.168.7.%d", 2+n%2) // outside what root's configuration gives default
					dir, name = results, fmt.Sprintf("astatic-c%d-net1", n)
					r.write(b, filepath.Join(dir, name), entry(fmt.Sprintf("c%d", n), ip))
				}
				r.d.p.marks.file(dir, name)
				b.StartTimer()
				if ok, full := r.step(); !ok || full {
					b.Fatalf("pass ok %v, full %v, want an update pass that worked:\n%s", ok, full, r.log)
				}
				b.StopTimer()
				if !slices.Contains(r.routes(), ip+"/32") {
					b.Fatalf("no route to %s", ip)
				}
				if err := os.Remove(filepath.Join(dir, name)); err != nil {
					b.Fatal(err)
				}
				r.d.p.marks.file(dir, name)
				if ok, full := r.step(); !ok || full || slices.Contains(r.routes(), ip+"/32") {
					b.Fatalf("release: pass ok %v, full %v, routes %q", ok, full, r.routes())
				}
				b.StartTimer()
			}
		})
	}
}
