package main

import (
	"strings"
	"testing"
)

// TestMutate: each mutant changes its operator alone; a binary one keeps
// its operands together, as gremlins' change of the syntax tree does.
func TestMutate(t *testing.T) {
	src := strings.Split("package p\n\nfunc f(a, b, c bool, x int) bool {\n\tx += 2\n\treturn a && b && c || x < 3\n}\n", "\n")
	for _, tt := range []struct {
		m    mutant
		want string
	}{
		{mutant{Type: "INVERT_LOGICAL", Line: 5, Column: 11}, "\treturn (a || b) && c || x < 3"},
		{mutant{Type: "INVERT_LOGICAL", Line: 5, Column: 21}, "\treturn (a && b && c && x < 3)"},
		{mutant{Type: "CONDITIONALS_BOUNDARY", Line: 5, Column: 26}, "\treturn a && b && c || (x <= 3)"},
		{mutant{Type: "REMOVE_SELF_ASSIGNMENTS", Line: 4, Column: 4}, "\tx = 2"},
	} {
		tt.m.file = "p.go"
		got, err := mutate(src, tt.m)
		if err != nil {
			t.Fatal(err)
		}
		if line := strings.Split(got, "\n")[tt.m.Line-1]; line != tt.want {
			t.Errorf("%s at %d:%d: %q, want %q", tt.m.Type, tt.m.Line, tt.m.Column, line, tt.want)
		}
	}
	if _, err := mutate(src, mutant{Type: "INVERT_LOGICAL", Line: 4, Column: 4, file: "p.go"}); err == nil {
		t.Error("INVERT_LOGICAL of += made a mutant")
	}
}
