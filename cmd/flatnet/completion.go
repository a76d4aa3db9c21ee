package main

import (
	_ "embed"
	"fmt"
	"io"
)

// The completion scripts, kept as files so the packages can install them
// as they are: completion/flatnet.bash and completion/_flatnet.
var (
	//go:embed completion/flatnet.bash
	bashCompletion string
	//go:embed completion/_flatnet
	zshCompletion string
)

// completionCmd prints the completion script for a shell.
func completionCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: flatnet completion bash|zsh")
		return exitUsage
	}
	switch args[0] {
	case "bash":
		fmt.Fprint(stdout, bashCompletion)
	case "zsh":
		fmt.Fprint(stdout, zshCompletion)
	default:
		fmt.Fprintf(stderr, "flatnet completion: no completion for %q; bash and zsh are supported\n", args[0])
		return exitUsage
	}
	return exitOK
}
