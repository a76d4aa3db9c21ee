// Package scripts holds the tests of the shell scripts in packaging/ that
// run outside the package test: deps.sh on systems it does not support,
// and ci.sh, the scripts' reading of CI, against the Go tests' own
// (testenv.CI). It has no code of its own.
package scripts
