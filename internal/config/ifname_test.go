package config

import (
	"strings"
	"testing"
)

func TestValidIfName(t *testing.T) {
	tests := []struct {
		name string
		want string // "" for valid, else a substring of the error
	}{
		{"eno1", ""},
		{"eno1.host", ""},
		{"enp0s31f6.h", ""},
		{"a", ""},
		{"x-_.@+=", ""},
		{"123456789012345", "all digits"},
		{"abcdefghijklmno", ""},
		{"abcdefghijklmnop", "is 16 bytes; a Linux interface name has at most 15"},
		{"", "empty"},
		{".", "not a valid interface name"},
		{"..", "not a valid interface name"},
		{"...", ""},
		{"0", "all digits"},
		{"a/b", `contains '/'`},
		{"a:b", `contains ':'`},
		{"a%d", `contains '%'`},
		{"a b", `contains ' '`},
		{"a\tb", `printable ASCII`},
		{"a\nb", `printable ASCII`},
		{"a\x00b", `printable ASCII`},
		{"a\x7f", `printable ASCII`},
		{"ä", `printable ASCII`},
	}
	for _, tt := range tests {
		err := ValidIfName(tt.name)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("ValidIfName(%q) = %v, want nil", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("ValidIfName(%q) = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}
