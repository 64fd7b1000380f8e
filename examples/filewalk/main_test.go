package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/shmlink/shmlink/internal/testproc"
)

// The test runs the demo as it runs for a user: the test binary,
// re-executed as the role "filewalk", is the client, and it starts itself
// again as the server.
func TestMain(m *testing.M) {
	testproc.Main(m, map[string]func([]string) error{"filewalk": testproc.Program(main)})
}

// entryLine is a printed entry: mode, size, date, time, then the path,
// which may hold spaces.
var entryLine = regexp.MustCompile(`^\S+ +\d+ \S+ \S+ (.*)$`)

func TestFilewalk(t *testing.T) {
	rt := filepath.Join(testproc.TempDir(t), "rt")
	if err := os.Mkdir(rt, 0o700); err != nil {
		t.Fatal(err)
	}
	root := testproc.TempDir(t)
	long := root
	for i := 0; i < 12; i++ { // a path of about 3000 bytes
		long = filepath.Join(long, strings.Repeat(strconv.Itoa(i%10), 240))
	}
	files := map[string]string{
		"plain.txt":                  "hello",
		"sub/dir/deeper.bin":         strings.Repeat("x", 100000),
		strings.Repeat("n", 255):     "the longest file name",
		long[len(root)+1:] + "/leaf": "at the end of a long path",
	}
	for name, data := range oddFiles { // names this OS allows
		files[name] = data
	}
	var wantBytes int
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		wantBytes += len(data)
	}

	p := testproc.Options{Env: []string{"SHMLINK_DIR=" + rt}}.Start(t, "filewalk", root)
	p.Wait(t) // its stderr is in the log
	stdout, stderr := p.Stdout.All(t), p.Stderr.All(t)

	printed := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
		m := entryLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("malformed line %q", line)
		}
		printed[m[1]] = true
	}
	var want []string
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		want = append(want, printable(path))
		return err
	})
	for _, p := range want {
		if !printed[p] {
			t.Errorf("%s not printed", p)
		}
	}
	if len(printed) != len(want) {
		t.Errorf("printed %d entries, want %d:\n%s", len(printed), len(want), stdout)
	}
	for _, q := range oddQuoted {
		if !strings.Contains(stdout, q) {
			t.Errorf("%s not printed quoted", q)
		}
	}
	summary := strconv.Itoa(len(want)) + " entries, " + strconv.Itoa(len(files)) + " files, " +
		strconv.Itoa(wantBytes) + " bytes in files"
	if !strings.HasPrefix(stderr, summary) || !strings.Contains(stderr, "entries/s") {
		t.Errorf("summary %q, want it to start %q", stderr, summary)
	}
}
