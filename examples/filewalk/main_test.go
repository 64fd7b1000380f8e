package main

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The test runs the demo as it runs for a user: the test binary,
// re-executed with asMainEnv set, is the client, and it starts itself
// again as the server.
const asMainEnv = "FILEWALK_TEST_AS_MAIN"

func init() {
	if os.Getenv(asMainEnv) == "1" {
		main()
		os.Exit(0)
	}
}

// entryLine is a printed entry: mode, size, date, time, then the path,
// which may hold spaces.
var entryLine = regexp.MustCompile(`^\S+ +\d+ \S+ \S+ (.*)$`)

func TestFilewalk(t *testing.T) {
	rt := filepath.Join(t.TempDir(), "rt")
	if err := os.Mkdir(rt, 0o700); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	long := root
	for i := 0; i < 12; i++ { // a path of about 3000 bytes
		long = filepath.Join(long, strings.Repeat(strconv.Itoa(i%10), 240))
	}
	files := map[string]string{
		"plain.txt":                  "hello",
		"sub/dir/deeper.bin":         strings.Repeat("x", 100000),
		"line\nbreak":                "a newline in the name",
		"bad\xffutf8":                "not UTF-8",
		`quote" and space`:           "",
		strings.Repeat("n", 255):     "the longest file name",
		long[len(root)+1:] + "/leaf": "at the end of a long path",
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

	cmd := exec.Command(os.Args[0], root)
	cmd.Env = append(os.Environ(), asMainEnv+"=1", "SHMLINK_DIR="+rt,
		"GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("filewalk: %v\n%s", err, stderr.String())
	}

	printed := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n") {
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
		t.Errorf("printed %d entries, want %d:\n%s", len(printed), len(want), stdout.String())
	}
	for _, q := range []string{`/line\nbreak"`, `/bad\xffutf8"`, `/quote\" and space"`} {
		if !strings.Contains(stdout.String(), q) {
			t.Errorf("%s not printed quoted", q)
		}
	}
	summary := strconv.Itoa(len(want)) + " entries, " + strconv.Itoa(len(files)) + " files, " +
		strconv.Itoa(wantBytes) + " bytes in files"
	if !strings.HasPrefix(stderr.String(), summary) || !strings.Contains(stderr.String(), "entries/s") {
		t.Errorf("summary %q, want it to start %q", stderr.String(), summary)
	}
}
