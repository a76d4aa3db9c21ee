package config

import (
	"fmt"
	"strings"
)

// MaxIfNameLen is the longest Linux interface name in bytes: IFNAMSIZ (16)
// minus the terminating NUL.
const MaxIfNameLen = 15

// ValidIfName reports why name cannot be a Linux interface name, or nil when
// it can. It applies the kernel's rule (dev_valid_name: 1 to 15 bytes, not
// "." or "..", no '/', ':' or whitespace) and, like systemd, also refuses
// bytes outside printable ASCII and all-digit names (tools read those as an
// interface index). '%' is refused too: the kernel expands "%d" in a new
// link's name to a number, so the link would not get the name asked for.
func ValidIfName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty; a Linux interface name has 1 to %d bytes", MaxIfNameLen)
	case len(name) > MaxIfNameLen:
		return fmt.Errorf("%q is %d bytes; a Linux interface name has at most %d", name, len(name), MaxIfNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("%q is not a valid interface name", name)
	case strings.Trim(name, "0123456789") == "":
		return fmt.Errorf("%q is all digits, which tools read as an interface index", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c <= ' ' || c >= 0x7f:
			return fmt.Errorf("%q contains %q; a Linux interface name is printable ASCII without spaces", name, c)
		case c == '/' || c == ':' || c == '%':
			return fmt.Errorf("%q contains %q, which a Linux interface name cannot contain", name, c)
		}
	}
	return nil
}
