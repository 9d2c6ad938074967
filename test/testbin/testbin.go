// Package testbin builds the cdcrecon binary once for a test binary's
// suites that run it as a separate process.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Main builds cdcrecon into a temporary directory, sets *path to it, runs
// the tests and exits with their status. Call it from TestMain.
func Main(m *testing.M, path *string) {
	dir, err := os.MkdirTemp("", "cdcrecon-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	*path = filepath.Join(dir, "cdcrecon")
	build := exec.Command("go", "build", "-o", *path, "github.com/cdcrecon/cdcrecon/cmd/cdcrecon")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building cdcrecon:", err)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
