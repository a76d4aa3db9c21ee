package statedir

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// benchDir writes n allocation files as host-local would, plus its lock
// and last_reserved_ip.0, into a fresh temporary directory.
func benchDir(b *testing.B, n int) string {
	b.Helper()
	dir := b.TempDir()
	ip := netip.MustParseAddr("10.1.0.1")
	content := []byte("f81d4fae7dec11d0a76500a0c91e6bf6f81d4fae7dec11d0a76500a0c91e6bf6\r\neth0")
	for range n {
		if err := os.WriteFile(filepath.Join(dir, ip.String()), content, 0o644); err != nil {
			b.Fatal(err)
		}
		ip = ip.Next()
	}
	for _, name := range []string{"lock", "last_reserved_ip.0"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(ip.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// BenchmarkRead is a full read of a state directory: what flatnet does at
// start-up, on resync and after an inotify overflow.
func BenchmarkRead(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			dir := benchDir(b, n)
			b.ReportAllocs()
			for b.Loop() {
				allocs, bad, err := Read(dir)
				if err != nil || len(allocs) != n || len(bad) != 0 {
					b.Fatalf("read %d allocations, %d bad, err %v", len(allocs), len(bad), err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/file")
		})
	}
}

// BenchmarkReadOne is the read of one entry after an inotify event: what a
// pod coming costs.
func BenchmarkReadOne(b *testing.B) {
	dir := benchDir(b, 1)
	b.ReportAllocs()
	for b.Loop() {
		if ip, _, reason := ReadOne(dir, "10.1.0.1"); !ip.IsValid() || reason != "" {
			b.Fatal(reason)
		}
	}
}
