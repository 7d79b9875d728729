package testbed

import (
	"encoding/json"
	"os"
	"path/filepath"
)

// WriteResults saves a suite's report in dir as results.json (v, indented) and results.md
// (markdown), the two files every measurement suite leaves for a reader and for tools.
func WriteResults(dir string, v any, markdown string) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "results.md"), []byte(markdown), 0o644)
}
