// Command ci tells the shell scripts whether they run under continuous
// integration, by the rule the Go tests use (testenv.CI): it exits 0 and
// prints "yes" when $CI means CI, exits 1 and prints "no" when it does not.
// packaging/test-package.sh and packaging/previous-deb.sh run it, so a
// skip fails under CI in the shell exactly where it would in Go.
//
//	go run ./internal/dev/ci
package main

import (
	"fmt"
	"os"

	"github.com/flatnet/flatnet/internal/dev/testenv"
)

func main() {
	if testenv.CI() {
		fmt.Println("yes")
		return
	}
	fmt.Println("no")
	os.Exit(1)
}
