package testproc

import (
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
)

// TempDir is t.TempDir, except under Wine 8, whose NtSetInformationFile
// does not know FileDispositionInformationEx: os.RemoveAll (and with it
// t.TempDir's cleanup) fails there with "Invalid function" on the first
// file, while os.Remove, which deletes through DeleteFileW, works. There
// TempDir makes the directory itself and removes it entry by entry.
func TempDir(t testing.TB) string {
	t.Helper()
	if runtime.GOOS != "windows" {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp("", "testproc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := removeTree(dir); err != nil {
			t.Errorf("TempDir cleanup: %v", err)
		}
	})
	return dir
}

// removeTree removes dir and everything below it with os.Remove, deepest
// entries first.
func removeTree(dir string) error {
	var paths []string
	err := filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		paths = append(paths, path)
		return nil
	})
	if err != nil {
		return err
	}
	// WalkDir visits a directory before its entries: reversed, every entry
	// goes before its directory.
	for _, p := range slices.Backward(paths) {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}
