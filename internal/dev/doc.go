// Package dev holds flatnet's developer tooling, none of which is shipped
// in the packages: lab (throwaway network-namespace labs with real CNI
// pods), e2e (the integration tests that run the real binary in them),
// flatnet-lab (the demo and the benchmark), pause (the sandbox program
// of the labs' CRI pods), testenv (what a test does when the machine
// lacks something) and ci (testenv's reading of $CI, for the shell
// scripts). The product's packages never import it.
package dev
