package cni

import (
	"fmt"
	"strconv"
	"strings"
)

// What libcni's NetworkConfFromBytes (v1.3.x) checks in a network list
// beyond its name, cniVersion and plugins, so that a list the runtime
// refuses is refused here too, and what it makes of "cniVersions".

// libcniCurrent is the newest CNI spec version libcni v1.3 implements
// (version.Current); "cniVersions" entries above it are ignored.
const libcniCurrent = "1.1.0"

// listRules checks the optional keys of a decoded network list and returns
// the cniVersion libcni settles on: the highest of "cniVersions" and
// "cniVersion" that libcni implements, when "cniVersions" is given.
func listRules(raw map[string]any, cniVersion string) (string, error) {
	for _, key := range []string{"disableCheck", "disableGC", "loadOnlyInlinedPlugins"} {
		v, ok := raw[key]
		if !ok {
			continue
		}
		if _, ok := v.(bool); ok {
			continue
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf(`%q is %s, not true or false`, key, jsonType(v))
		}
		if l := strings.ToLower(s); l != "true" && l != "false" {
			return "", fmt.Errorf(`%q is %q, not true or false`, key, s)
		}
	}
	rawVersions, ok := raw["cniVersions"]
	if !ok {
		return cniVersion, nil
	}
	list, ok := rawVersions.([]any)
	if !ok {
		return "", fmt.Errorf(`"cniVersions" is %s, not a list`, jsonType(rawVersions))
	}
	var best []int
	bestS := ""
	consider := func(v string) error {
		p, err := parseVersion(v)
		if err != nil {
			return err
		}
		if cmpVersion(p, mustVersion(libcniCurrent)) <= 0 && (best == nil || cmpVersion(p, best) > 0) {
			best, bestS = p, v
		}
		return nil
	}
	for i, rv := range list {
		v, ok := rv.(string)
		if !ok {
			return "", fmt.Errorf(`"cniVersions"[%d] is %s, not a string`, i, jsonType(rv))
		}
		if err := consider(v); err != nil {
			return "", fmt.Errorf(`"cniVersions"[%d]: %w`, i, err)
		}
	}
	if cniVersion != "" {
		if err := consider(cniVersion); err != nil {
			return "", fmt.Errorf(`"cniVersion": %w`, err)
		}
	}
	if best == nil {
		return cniVersion, nil
	}
	return bestS, nil
}

// parseVersion is libcni's version.ParseVersion: up to three dot-separated
// integers (strconv.Atoi, so signs are allowed); "" is 0.1.0.
func parseVersion(v string) ([]int, error) {
	if v == "" {
		return []int{0, 1, 0}, nil
	}
	parts := strings.Split(v, ".")
	if len(parts) > 3 {
		return nil, fmt.Errorf("invalid version %q: too many parts", v)
	}
	out := []int{0, 0, 0}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("invalid version %q", v)
		}
		out[i] = n
	}
	return out, nil
}

// mustVersion parses a version known to be valid.
func mustVersion(v string) []int {
	p, err := parseVersion(v)
	if err != nil {
		panic(err)
	}
	return p
}

// cmpVersion compares parsed versions.
func cmpVersion(a, b []int) int {
	for i := range 3 {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}
