package lab

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// CacheEntry is what the lab reads of an entry of libcni's result cache,
// <CacheDir>/results/<network>-<container id>-<interface>, written by a
// runtime that uses libcni (containerd's CRI, cnitool) after ADD and
// removed after DEL.
type CacheEntry struct {
	// Path is the entry's file.
	Path string
	// Kind is "cniCacheV1" for libcni since v0.8.
	Kind string `json:"kind"`
	// ContainerID, IfName and NetworkName name the attachment.
	ContainerID string `json:"containerId"`
	IfName      string `json:"ifName"`
	NetworkName string `json:"networkName"`
	// Config is the network configuration the attachment was made with.
	Config []byte `json:"config"`
	// Result is the plugins' ADD result.
	Result json.RawMessage `json:"result"`
}

// ReadCacheEntry reads the libcni cache entry of one attachment from
// CacheDir; an error wrapping os.ErrNotExist when there is none.
func (l *Lab) ReadCacheEntry(network, containerID, ifName string) (*CacheEntry, error) {
	p := filepath.Join(l.CacheDir(), "results", network+"-"+containerID+"-"+ifName)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	e := &CacheEntry{Path: p}
	if err := json.Unmarshal(b, e); err != nil {
		return nil, fmt.Errorf("libcni cache entry %s: %w", p, err)
	}
	return e, nil
}
