package main

import (
	"fmt"
	"io"

	"github.com/flatnet/flatnet/internal/config"
)

// checkCmd diagnoses the node and the CNI configuration.
func checkCmd(cfg config.Config, asJSON bool, stdout, stderr io.Writer) int {
	fmt.Fprintf(stderr, "flatnet check: %v\n", errNotYet)
	return exitFail
}
