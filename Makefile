# flatnet — `make help` lists the targets.

# `sudo make ...` drops /usr/local/go/bin from PATH: look there too.
GO      ?= $(or $(shell command -v go 2>/dev/null),$(wildcard /usr/local/go/bin/go),go)
GOFMT   ?= $(or $(wildcard $(dir $(GO))gofmt),gofmt)
BIN     ?= bin/flatnet
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.DEFAULT_GOAL := help
.PHONY: help build test test-go unit lint demo bench fuzz mutate clean deps deps-demo

# The CNI plugins: Debian installs them in /usr/lib/cni, Fedora in /usr/libexec/cni.
CNI_PATH ?= /opt/cni/bin:/usr/lib/cni:/usr/libexec/cni
export CNI_PATH

help: ## show this list
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/flatnet
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/flatnet

deps: ## install what demo and test need, when missing (apt-get or dnf; root)
	GO='$(GO)' packaging/deps.sh demo test package

deps-demo:
	GO='$(GO)' packaging/deps.sh demo

# Every part runs even when an earlier one fails; the last line names the failed ones.
TEST_PARTS := lint lint-package test-go test-package
test: deps ## run every test (root): lint, package lint, Go tests, the package under a real systemd
	@failed=; for t in $(TEST_PARTS); do \
		echo "== make $$t"; \
		$(MAKE) --no-print-directory $$t || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed" >&2; exit 1; fi; \
	echo "make test: all passed ($(TEST_PARTS))"

# The oracle tests (flatnet's parsers against the CNI project's code) are a
# module of their own, so that the plugins module stays out of flatnet's.
ORACLE := internal/dev/oracle

test-go: ## unit, fuzz seeds and real-kernel integration tests (root)
	$(GO) test -count=1 -tags integration ./...
	cd $(ORACLE) && $(GO) test -count=1 ./...

unit: ## run the unit tests only (no root needed; integration tests build only with -tags integration)
	$(GO) test -count=1 ./...
	cd $(ORACLE) && $(GO) test -count=1 ./...

lint: ## gofmt, go vet, staticcheck (the integration tests too)
	@out=$$($(GOFMT) -l $$(git ls-files '*.go')) && test -z "$$out" || { echo "$$out"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags integration ./...
	$(GO) tool staticcheck ./...
	$(GO) tool staticcheck -tags integration ./...
	cd $(ORACLE) && $(GO) vet ./... && $(GO) tool staticcheck ./...

demo: deps-demo build ## as root: a throwaway lab of namespaces; the node reaches its pods only with flatnet
	$(GO) run ./internal/dev/flatnet-lab demo --flatnet $(BIN)

bench: build ## as root: allocation-to-route latency, bursts, cold start, beside the baselines
	$(GO) run ./internal/dev/flatnet-lab bench --flatnet $(BIN)

fuzz: ## run each fuzzer for 30s
	@for p in $$(grep -rl --include='*_test.go' '^func Fuzz' internal | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$p/*_test.go | cut -d' ' -f2); do \
	    (cd $$p && $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 30s .) || exit 1; done; done

mutate: ## mutation score of the pure core (about 40 minutes; not part of test): docs/testing.md keeps the last
	$(GO) run ./internal/dev/mutate

clean: ## remove build output
	rm -rf bin dist

-include packaging/Makefile.inc
