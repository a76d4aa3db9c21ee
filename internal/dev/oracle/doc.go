// Package oracle holds flatnet's differential tests against the CNI
// project's own code: flatnet reads the files host-local reads with a
// parser of its own (internal/cni), and these tests hold that parser to
// host-local's allocator (github.com/containernetworking/plugins), on the
// golden configurations of internal/cni/testdata and on what a fuzzer makes
// of them.
//
// It is a module of its own so that the plugins module stays out of
// flatnet's go.mod and binary: linking the allocator would add about
// 0.5 MB (8%) to flatnet and bring go-iptables and pkg/errors with it, for
// a parser of some 200 lines. `make test` runs it; `make fuzz` fuzzes it with the others.
package oracle
