package config

import (
	"strconv"
	"strings"
)

// BurntSushi/toml keeps the position of every key private, so messages about
// a key that decoded fine but failed a check (unknown, out of range, clashing
// with another key) find its line here, in a small scanner over the raw text.
//
// The scanner only needs the first segment of each key and the table it sits
// in, so it understands just enough TOML to never mistake the inside of a
// string, an array or an inline table for a key: basic, literal and
// multi-line strings, brackets and braces, comments. It runs on text the TOML
// parser has accepted; on anything else it still terminates and never panics,
// it just knows fewer lines.

// keyLines tells where keys are defined: at top level and in each [[network]]
// table, in the order the tables appear.
type keyLines struct {
	top  map[string]int // first segment of a top-level key or table header -> line
	nets []tableLines   // one per [[network]] header
}

// tableLines is one [[network]] table: the line of its header and of its keys.
type tableLines struct {
	header int
	keys   map[string]int
}

// line returns the line of key in the net-th [[network]] table (0-based), or
// at top level when net is -1; 0 when it is not known.
func (k *keyLines) line(net int, key string) int {
	if net == inTop {
		return k.top[key]
	}
	if net >= 0 && net < len(k.nets) {
		return k.nets[net].keys[key]
	}
	return 0
}

// header returns the line of the net-th [[network]] header (0-based), or 0.
func (k *keyLines) header(net int) int {
	if net >= 0 && net < len(k.nets) {
		return k.nets[net].header
	}
	return 0
}

// scanner walks src byte by byte, counting lines.
type scanner struct {
	src  string
	i    int
	line int
}

// where tells which table the keys being read belong to.
const (
	inTop   = -1
	inOther = -2 // a table flatnet does not know; its keys are not recorded
)

// scanKeyLines indexes the keys of the TOML document src.
func scanKeyLines(src string) *keyLines {
	k := &keyLines{top: map[string]int{}}
	s := &scanner{src: src, line: 1}
	table := inTop
	record := func(m map[string]int, key string, line int) {
		if _, ok := m[key]; !ok {
			m[key] = line
		}
	}
	for s.i < len(s.src) {
		s.skipBlank()
		if s.i >= len(s.src) {
			break
		}
		switch c := s.src[s.i]; c {
		case '\n':
			s.i++
			s.line++
			continue
		case '#':
			s.skipLine()
			continue
		case '[':
			line := s.line
			double := s.peek(1) == '['
			if double {
				s.i += 2
			} else {
				s.i++
			}
			segs := s.keyPath()
			switch {
			case len(segs) == 0:
				table = inOther
			case double && len(segs) == 1 && segs[0] == "network":
				k.nets = append(k.nets, tableLines{header: line, keys: map[string]int{}})
				table = len(k.nets) - 1
				record(k.top, "network", line)
			case segs[0] == "network" && len(segs) > 1 && len(k.nets) > 0:
				// [network.x] or [[network.x]]: a sub-table of the last [[network]].
				record(k.nets[len(k.nets)-1].keys, segs[1], line)
				table = inOther
			default:
				record(k.top, segs[0], line)
				table = inOther
			}
			s.skipLine()
			continue
		}
		line := s.line
		segs := s.keyPath()
		if len(segs) == 0 || s.peek(0) != '=' {
			s.skipLine()
			continue
		}
		s.i++ // '='
		switch {
		case table == inTop:
			record(k.top, segs[0], line)
		case table >= 0:
			record(k.nets[table].keys, segs[0], line)
		}
		s.skipValue()
	}
	return k
}

// peek returns the byte off places ahead, or 0 past the end.
func (s *scanner) peek(off int) byte {
	if s.i+off < len(s.src) {
		return s.src[s.i+off]
	}
	return 0
}

// skipBlank skips spaces, tabs and carriage returns.
func (s *scanner) skipBlank() {
	for s.i < len(s.src) && (s.src[s.i] == ' ' || s.src[s.i] == '\t' || s.src[s.i] == '\r') {
		s.i++
	}
}

// skipLine moves to the start of the next line, outside any string.
func (s *scanner) skipLine() {
	for s.i < len(s.src) {
		c := s.src[s.i]
		s.i++
		if c == '\n' {
			s.line++
			return
		}
	}
}

// keyPath reads a dotted key ("a", "a.b", `"a b".c`) and returns its
// segments; it stops before '=' or the closing bracket of a header.
func (s *scanner) keyPath() []string {
	var segs []string
	for {
		s.skipBlank()
		if s.i >= len(s.src) {
			return segs
		}
		switch c := s.src[s.i]; {
		case c == '"':
			k := s.quoted('"', true)
			if strings.Contains(k, "\\") {
				if u, err := strconv.Unquote(`"` + k + `"`); err == nil {
					k = u
				}
			}
			segs = append(segs, k)
		case c == '\'':
			segs = append(segs, s.quoted('\'', false))
		case isBareKeyByte(c):
			start := s.i
			for s.i < len(s.src) && isBareKeyByte(s.src[s.i]) {
				s.i++
			}
			segs = append(segs, s.src[start:s.i])
		default:
			return nil
		}
		s.skipBlank()
		if s.peek(0) != '.' {
			return segs
		}
		s.i++
	}
}

// quoted reads a one-line string starting at its opening quote and returns
// its raw content (escapes are kept as written).
func (s *scanner) quoted(q byte, escapes bool) string {
	s.i++
	start := s.i
	for s.i < len(s.src) {
		c := s.src[s.i]
		switch {
		case c == '\n':
			return s.src[start:s.i]
		case escapes && c == '\\':
			s.i += 2
			continue
		case c == q:
			s.i++
			return s.src[start : s.i-1]
		}
		s.i++
	}
	return s.src[start:]
}

// skipValue moves past a value and the rest of its last line: strings of
// every kind, arrays and inline tables across lines, comments.
func (s *scanner) skipValue() {
	depth := 0
	for s.i < len(s.src) {
		c := s.src[s.i]
		switch c {
		case '\n':
			s.i++
			s.line++
			if depth <= 0 {
				return
			}
		case '#':
			for s.i < len(s.src) && s.src[s.i] != '\n' {
				s.i++
			}
		case '"', '\'':
			if s.peek(1) == c && s.peek(2) == c {
				s.multiline(c)
			} else {
				s.quoted(c, c == '"')
			}
		case '[', '{':
			depth++
			s.i++
		case ']', '}':
			depth--
			s.i++
		default:
			s.i++
		}
	}
}

// multiline skips a multi-line string (three double or three single quotes),
// counting its lines. Up to two quotes right before the closing delimiter
// belong to the string.
func (s *scanner) multiline(q byte) {
	s.i += 3
	for s.i < len(s.src) {
		c := s.src[s.i]
		switch {
		case c == '\n':
			s.line++
		case c == '\\' && q == '"':
			if s.peek(1) == '\n' {
				s.line++
			}
			s.i += 2
			continue
		case c == q && s.peek(1) == q && s.peek(2) == q:
			s.i += 3
			for n := 0; n < 2 && s.peek(0) == q; n++ {
				s.i++
			}
			return
		}
		s.i++
	}
}

// isBareKeyByte reports whether c may appear in a bare TOML key.
func isBareKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}
