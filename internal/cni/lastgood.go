package cni

import (
	"fmt"
	"log/slog"

	"github.com/flatnet/flatnet/internal/text"
)

// LastGood follows a CNI configuration directory across reads, as the
// daemon needs it: a file that stops parsing (an edit saved half-way, a
// typo) keeps the networks it defined before, so a bad edit never costs a
// route; a file created but not yet written keeps what it had too. What
// to tell the operator comes back as Notes, each once while it lasts.
type LastGood struct {
	byFile  map[string][]Network
	claims  map[string]Claim // by file: what it claims, kept like its networks
	told    map[string]bool  // notes reported and still true
	current []Claim
}

// Note is something about a CNI configuration file the operator should
// hear of, once.
type Note struct {
	Level slog.Level
	File  string
	Msg   string
}

// NewLastGood returns a LastGood that has seen nothing yet.
func NewLastGood() *LastGood {
	return &LastGood{byFile: map[string][]Network{}, claims: map[string]Claim{}, told: map[string]bool{}}
}

// Update takes the directory's files as ReadDir returned them and returns
// the networks, in libcni's order (the first definition of a name wins),
// and the notes not reported before.
func (d *LastGood) Update(files []File) ([]Network, []Note) {
	byFile := map[string][]Network{}
	claims := map[string]Claim{}
	var all []Network
	d.current = nil
	claimed := map[string]bool{}
	claim := func(c Claim, ok bool) {
		if ok && !claimed[c.Name] {
			claimed[c.Name] = true
			d.current = append(d.current, c)
		}
	}
	var out []Note
	seen := map[string]bool{}
	add := func(nets []Network) {
		for _, n := range nets {
			if !seen[n.Name] {
				seen[n.Name] = true
				all = append(all, n)
			}
		}
	}
	var now []Note
	for _, f := range files {
		if !hasCNIExt(f.Name) {
			continue
		}
		if len(f.Data) == 0 && f.Err == nil {
			// Being written (created, not yet filled): its write event
			// brings us back; until then it keeps what it had.
			byFile[f.Name] = d.byFile[f.Name]
			add(byFile[f.Name])
			c, ok := d.claims[f.Name]
			if ok {
				claims[f.Name] = c
			}
			claim(c, ok)
			continue
		}
		if list, err := readList(f.Name, f.Data); err == nil && f.Err == nil && list.name != "" {
			claims[f.Name] = claimOf(f.Name, list)
		} else if c, ok := d.claims[f.Name]; ok {
			claims[f.Name] = c // a file that stops parsing keeps its claim too
		}
		c, ok := claims[f.Name]
		claim(c, ok)
		nets, probs := Discover([]File{f})
		keep := len(probs) > 0 && len(nets) == 0 && len(d.byFile[f.Name]) > 0
		if keep {
			nets = d.byFile[f.Name]
		}
		for _, p := range probs {
			msg := fmt.Sprintf("CNI config %s skipped: %v", text.Printable(f.Name), p.Err)
			if keep {
				msg = fmt.Sprintf("CNI config %s: %v (keeping the networks it defined before)", text.Printable(f.Name), p.Err)
			}
			now = append(now, Note{Level: slog.LevelWarn, File: f.Name, Msg: msg})
		}
		if len(probs) == 0 && len(nets) == 0 {
			now = append(now, Note{Level: slog.LevelInfo, File: f.Name,
				Msg: fmt.Sprintf("CNI config %s skipped: no macvlan plugin in it", text.Printable(f.Name))})
		}
		byFile[f.Name] = nets
		add(nets)
	}
	told := map[string]bool{}
	for _, n := range now {
		if !d.told[n.Msg] {
			out = append(out, n)
		}
		told[n.Msg] = true
	}
	d.byFile, d.told, d.claims = byFile, told, claims
	return all, out
}

// Claims are what the files of the last Update claim (see Claims), in
// libcni's order; a file that stopped parsing keeps its claim, as it keeps
// its networks.
func (d *LastGood) Claims() []Claim { return d.current }

// Remembered is what a LastGood keeps of one file: the networks and the
// claim it had when last read good.
type Remembered struct {
	Networks []Network `json:"networks,omitempty"`
	Claim    *Claim    `json:"claim,omitempty"`
}

// Memory returns what d keeps, by file name, for a LastGood elsewhere
// (Restore) to read the directory as d would.
func (d *LastGood) Memory() map[string]Remembered {
	m := make(map[string]Remembered, len(d.byFile))
	for f, nets := range d.byFile {
		r := Remembered{Networks: nets}
		if c, ok := d.claims[f]; ok {
			r.Claim = &c
		}
		m[f] = r
	}
	for f, c := range d.claims {
		if _, ok := m[f]; !ok {
			m[f] = Remembered{Claim: &c}
		}
	}
	return m
}

// Restore makes d keep m (from another LastGood's Memory), as if its last
// Update had found those files so.
func (d *LastGood) Restore(m map[string]Remembered) {
	d.byFile, d.claims = map[string][]Network{}, map[string]Claim{}
	for f, r := range m {
		if len(r.Networks) > 0 {
			d.byFile[f] = r.Networks
		}
		if r.Claim != nil {
			d.claims[f] = *r.Claim
		}
	}
}
