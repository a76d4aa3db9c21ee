// Package text holds the few helpers flatnet's messages share: counts
// with their nouns, short lists of addresses, input quoted safely on one
// line. It is pure and depends on nothing of flatnet's.
package text

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Plural formats a count with the right noun: "1 route", "2 routes".
func Plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// Addrs lists at most max addresses, in order, and counts the rest: "a, b
// and 3 more".
func Addrs(ips []netip.Addr, max int) string {
	ips = slices.Clone(ips)
	slices.SortFunc(ips, netip.Addr.Compare)
	var s []string
	for i, ip := range ips {
		if i == max {
			s = append(s, fmt.Sprintf("and %d more", len(ips)-max))
			break
		}
		s = append(s, ip.String())
	}
	return strings.Join(s, ", ")
}

// Head is at most the first n elements of s.
func Head[T any](s []T, n int) []T {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Printable replaces control characters and bytes that are not UTF-8 in
// s with Go escapes, so a message quoting input stays on one line and shows what is
// there.
func Printable(s string) string {
	if !strings.ContainsFunc(s, unprintable) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unprintable(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

func unprintable(r rune) bool { return unicode.IsControl(r) || r == utf8.RuneError }
