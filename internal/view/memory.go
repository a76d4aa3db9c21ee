package view

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/flatnet/flatnet/internal/cni"
)

// MemoryFile is the name of the daemon's Memory in its runtime directory
// (sd.RuntimeDir).
const MemoryFile = "networks"

// MemoryVersion is the format of Memory's JSON; a reader refuses another.
const MemoryVersion = 1

// Memory is what a View knows from history that a fresh one cannot read
// on the node: what each configuration file held when last read good (so
// that a file that stopped parsing keeps its networks), and the networks
// known only from libcni's cache as last combined (so that one whose last
// entry went stays while its state directory holds allocations). The
// daemon writes it to its runtime directory; status and check Restore it.
type Memory struct {
	Version int                       `json:"version"`
	Files   map[string]cni.Remembered `json:"files,omitempty"`
	Cached  []cni.Network             `json:"cached,omitempty"`
}

// Memory returns what v knows from history.
func (v *View) Memory() Memory {
	m := Memory{Version: MemoryVersion, Files: v.disc.Memory()}
	for _, n := range v.cniNets {
		if n.FromCache() {
			m.Cached = append(m.Cached, n)
		}
	}
	return m
}

// Restore makes v know m, as if it had made the reads that led to it.
// Call it before the first Full.
func (v *View) Restore(m Memory) {
	v.disc.Restore(m.Files)
	v.cniNets = m.Cached
}

// Marshal encodes m as the runtime directory's file holds it.
func (m Memory) Marshal() []byte {
	b, _ := json.Marshal(m) // plain data: cannot fail
	return append(b, '\n')
}

// ParseMemory decodes what Marshal wrote.
func ParseMemory(b []byte) (Memory, error) {
	var m Memory
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Memory{}, fmt.Errorf("not flatnet's memory of the node: %w", err)
	}
	if m.Version != MemoryVersion {
		return Memory{}, fmt.Errorf("memory of the node in format %d, not %d", m.Version, MemoryVersion)
	}
	return m, nil
}
