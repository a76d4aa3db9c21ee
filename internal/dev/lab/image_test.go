package lab

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// readTar reads every regular file of a tar archive.
func readTar(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = data
	}
}

// TestWriteImage follows the layout as ctr images import does: index.json
// names the image and points at the manifest, the manifest at the config
// and the layer, every blob under its digest; the layer holds the program,
// executable, and the config runs it for this machine's architecture.
func TestWriteImage(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "pause")
	if err := os.WriteFile(prog, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "pause.tar")
	if err := WriteImage(out, Image{Ref: "flatnet.test/pause:lab", Binary: prog}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	files := readTar(t, b)
	if got := string(files["oci-layout"]); got != ociLayoutVersion {
		t.Errorf("oci-layout: %q", got)
	}
	blob := func(d descriptor) []byte {
		t.Helper()
		data, ok := files["blobs/sha256/"+strings.TrimPrefix(d.Digest, "sha256:")]
		if !ok {
			t.Fatalf("no blob %s", d.Digest)
		}
		if digestOf(data) != d.Digest || int64(len(data)) != d.Size {
			t.Fatalf("blob %s: digest %s, size %d (want %d)", d.Digest, digestOf(data), len(data), d.Size)
		}
		return data
	}
	var index struct {
		SchemaVersion int          `json:"schemaVersion"`
		Manifests     []descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if index.SchemaVersion != 2 || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %s", files["index.json"])
	}
	m := index.Manifests[0]
	if m.Annotations[annotationImage] != "flatnet.test/pause:lab" || m.Annotations[annotationRefName] != "lab" || m.MediaType != mediaTypeManifest {
		t.Errorf("index's manifest: %+v", m)
	}
	var manifest struct {
		Config descriptor   `json:"config"`
		Layers []descriptor `json:"layers"`
	}
	if err := json.Unmarshal(blob(m), &manifest); err != nil {
		t.Fatal(err)
	}
	if len(manifest.Layers) != 1 || manifest.Layers[0].MediaType != mediaTypeLayer || manifest.Config.MediaType != mediaTypeConfig {
		t.Fatalf("manifest: %+v", manifest)
	}
	var config struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
		Config       struct {
			Entrypoint []string `json:"Entrypoint"`
		} `json:"config"`
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(blob(manifest.Config), &config); err != nil {
		t.Fatal(err)
	}
	layer := blob(manifest.Layers[0])
	if config.Architecture != runtime.GOARCH || config.OS != "linux" || !slices.Equal(config.Config.Entrypoint, []string{"/pause"}) ||
		!slices.Equal(config.RootFS.DiffIDs, []string{digestOf(layer)}) {
		t.Errorf("config: %+v", config)
	}
	tr := tar.NewReader(bytes.NewReader(layer))
	h, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(tr)
	if h.Name != "pause" || h.Mode&0o111 == 0 || string(data) != "#!/bin/true\n" {
		t.Errorf("layer: %s mode %o, %q", h.Name, h.Mode, data)
	}

	// The same program makes the same image.
	again := filepath.Join(dir, "again.tar")
	if err := WriteImage(again, Image{Ref: "flatnet.test/pause:lab", Binary: prog}); err != nil {
		t.Fatal(err)
	}
	if b2, _ := os.ReadFile(again); !bytes.Equal(b, b2) {
		t.Error("a second image of the same program differs")
	}
	if err := WriteImage(again, Image{Ref: "pause", Binary: prog}); err == nil {
		t.Error("an unqualified name was taken")
	}
}

func TestParentPID(t *testing.T) {
	if ppid, ok := parentPID(os.Getpid()); !ok || ppid != os.Getppid() {
		t.Errorf("parentPID(self) = %d, %v; want %d", ppid, ok, os.Getppid())
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		`/tmp/a\040b`: "/tmp/a b",
		`/plain`:      "/plain",
		`/tab\011x`:   "/tab\tx",
		`/trail\04`:   `/trail\04`,
		`/end\040`:    "/end ",
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}
