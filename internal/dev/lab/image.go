package lab

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Image is a one-layer container image made from a single static program,
// for a lab whose runtime cannot pull (no registry is reachable from a
// test): WriteImage packs it as an OCI image layout in a tar archive,
// which `ctr images import` of containerd 1.6 accepts.
type Image struct {
	// Ref is the image's name, fully qualified as containerd and the CRI
	// keep it (no "docker.io/library/" is added to a name whose first
	// component has a dot): "flatnet.test/pause:lab".
	Ref string
	// Binary is the program's path on this machine; it becomes /<base
	// name of Binary> in the image and the image's entrypoint.
	Binary string
	// Args are the entrypoint's arguments.
	Args []string
}

// OCI media types and the annotation containerd names an imported image by.
const (
	mediaTypeManifest  = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig    = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayer     = "application/vnd.oci.image.layer.v1.tar"
	annotationImage    = "io.containerd.image.name"
	annotationRefName  = "org.opencontainers.image.ref.name"
	ociLayoutVersion   = `{"imageLayoutVersion":"1.0.0"}`
	imageEpochUnixTime = 0
)

// descriptor is an OCI content descriptor.
type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

// WriteImage writes img to path as a tar archive of an OCI image layout
// (oci-layout, index.json, blobs/sha256/…): one uncompressed layer holding
// the program, a config for this machine's architecture with the program
// as entrypoint, a manifest, and an index naming it img.Ref in the
// "io.containerd.image.name" annotation, the name `ctr images import`
// gives it. Every time stamp is the Unix epoch, so the same program always
// makes the same image.
func WriteImage(path string, img Image) error {
	if img.Ref == "" || !strings.Contains(img.Ref, "/") {
		return fmt.Errorf("image ref %q: want a fully qualified name such as flatnet.test/pause:lab", img.Ref)
	}
	prog, err := os.ReadFile(img.Binary)
	if err != nil {
		return fmt.Errorf("image program: %w", err)
	}
	name := filepath.Base(img.Binary)
	layer, err := tarOf([]tarFile{{name: name, mode: 0o755, data: prog}})
	if err != nil {
		return err
	}
	layerDigest := digestOf(layer)
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"created":      time.Unix(imageEpochUnixTime, 0).UTC().Format(time.RFC3339),
		"config": map[string]any{
			"Entrypoint": append([]string{"/" + name}, img.Args...),
			"WorkingDir": "/",
		},
		"rootfs": map[string]any{
			"type":     "layers",
			"diff_ids": []string{layerDigest},
		},
	})
	if err != nil {
		return err
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaTypeManifest,
		"config":        descriptor{MediaType: mediaTypeConfig, Digest: digestOf(config), Size: int64(len(config))},
		"layers":        []descriptor{{MediaType: mediaTypeLayer, Digest: layerDigest, Size: int64(len(layer))}},
	})
	if err != nil {
		return err
	}
	tag := img.Ref[strings.LastIndex(img.Ref, "/")+1:]
	if i := strings.LastIndex(tag, ":"); i >= 0 {
		tag = tag[i+1:]
	} else {
		tag = "latest"
	}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"manifests": []descriptor{{
			MediaType:   mediaTypeManifest,
			Digest:      digestOf(manifest),
			Size:        int64(len(manifest)),
			Annotations: map[string]string{annotationImage: img.Ref, annotationRefName: tag},
			Platform:    &platform{Architecture: runtime.GOARCH, OS: "linux"},
		}},
	})
	if err != nil {
		return err
	}
	blob := func(b []byte) tarFile {
		return tarFile{name: "blobs/sha256/" + strings.TrimPrefix(digestOf(b), "sha256:"), mode: 0o644, data: b}
	}
	archive, err := tarOf([]tarFile{
		{name: "blobs/", dir: true},
		{name: "blobs/sha256/", dir: true},
		blob(layer), blob(config), blob(manifest),
		{name: "oci-layout", mode: 0o644, data: []byte(ociLayoutVersion)},
		{name: "index.json", mode: 0o644, data: index},
	})
	if err != nil {
		return err
	}
	return writeFileAtomic(path, archive)
}

// tarFile is one entry of tarOf.
type tarFile struct {
	name string
	mode int64
	data []byte
	dir  bool
}

// tarOf makes a tar archive of root-owned entries dated at the epoch.
func tarOf(files []tarFile) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(imageEpochUnixTime, 0), Typeflag: tar.TypeReg}
		if f.dir {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// digestOf is the OCI digest of b: "sha256:<hex>".
func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
