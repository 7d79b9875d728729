package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteReplacesWhole(t *testing.T) {
	dir := t.TempDir()
	for _, fsync := range []bool{true, false} {
		for _, content := range []string{"first", "second, longer content", "3"} {
			if err := Write(dir, "state", []byte(content), fsync); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(dir, "state"))
			if err != nil || string(got) != content {
				t.Fatalf("read %q, %v; want %q", got, err, content)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "state"+TempSuffix)); !os.IsNotExist(err) {
		t.Fatalf("temporary file left behind: %v", err)
	}
	if err := Write(filepath.Join(dir, "missing"), "x", nil, true); err == nil {
		t.Fatal("no error writing into a missing directory")
	}
}
