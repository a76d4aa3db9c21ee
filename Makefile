# flatnet — `make help` lists the targets.

GO      ?= go
BIN     ?= bin/flatnet
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.DEFAULT_GOAL := help
.PHONY: help build test test-go unit lint demo bench fuzz clean

help: ## show this list
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/flatnet
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/flatnet

test: test-go test-package ## run every test (root): Go tests, then the package under a real systemd

test-go: ## unit, fuzz seeds and real-kernel integration tests (root)
	$(GO) test -count=1 -tags integration ./...

unit: ## run the unit tests only (no root needed; integration tests build only with -tags integration)
	$(GO) test -count=1 ./...

lint: ## gofmt, go vet, staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

demo: build ## as root: a throwaway lab of namespaces; the node reaches its pods only with flatnet
	$(GO) run ./internal/dev/flatnet-lab demo --flatnet $(BIN)

bench: build ## as root: allocation-to-route latency, bursts, cold start, beside the baselines
	$(GO) run ./internal/dev/flatnet-lab bench --flatnet $(BIN)

fuzz: ## run each fuzzer for 30s
	@for p in $$(grep -rl --include='*_test.go' '^func Fuzz' internal | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$p/*_test.go | cut -d' ' -f2); do \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 30s ./$$p || exit 1; done; done

clean: ## remove build output
	rm -rf bin dist

-include packaging/Makefile.inc
