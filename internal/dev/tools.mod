// Developer tools of the integration tests, kept apart from the daemon's
// go.mod so that their dependencies never move the versions flatnet is
// built with. The e2e tests build them with
// `go build -modfile=internal/dev/tools.mod <package>`.
module github.com/flatnet/flatnet

go 1.26.0

tool github.com/containernetworking/cni/cnitool

require (
	github.com/containernetworking/cni v1.3.1 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/cobra v1.9.1 // indirect
	github.com/spf13/pflag v1.0.6 // indirect
	go.opentelemetry.io/otel v1.29.0 // indirect
	go.opentelemetry.io/otel/trace v1.29.0 // indirect
)
