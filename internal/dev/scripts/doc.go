// Package scripts holds the tests of the shell scripts in packaging/ that
// run outside the package test: deps.sh on systems it does not support.
// It has no code of its own.
package scripts
