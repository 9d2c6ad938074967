// Package corpus holds real Debezium messages (see debezium/PROVENANCE.md)
// that processors/debezium decodes in its corpus test.
package corpus

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// The corpus is kept in the repository so that a clone is self-contained.
// When the project's shared corpus sits beside the repository, this test
// checks that the copy here holds exactly the same files.
func TestCopyMatchesSharedCorpus(t *testing.T) {
	shared := filepath.Join("..", "..", "..", "shared", "corpus", "debezium")
	if _, err := os.Stat(shared); err != nil {
		t.Skipf("no shared corpus at %s: nothing to compare", shared)
	}
	want := readTree(t, shared)
	got := readTree(t, "debezium")
	for name, b := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("%s: in the shared corpus, missing here (copy it into test/corpus/debezium)", name)
		} else if !bytes.Equal(g, b) {
			t.Errorf("%s: differs from the shared corpus", name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: here but not in the shared corpus", name)
		}
	}
}

func readTree(t *testing.T, root string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
