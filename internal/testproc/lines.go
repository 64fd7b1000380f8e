package testproc

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// Lines is one output stream of a child, split into lines. Next and Expect
// take lines in order; All waits for the end and returns the whole text.
// Nothing the child writes waits for a reader: lines queue up.
type Lines struct {
	name    string
	timeout time.Duration
	r       *os.File
	split   lineWriter
	text    bytes.Buffer  // everything read; All reads it once done is closed
	done    chan struct{} // closed when reading has stopped

	mu      sync.Mutex
	queue   []string      // lines not taken yet
	ended   bool          // no more lines will come
	changed chan struct{} // closed, and replaced, when queue or ended change
}

func newLines(name string, timeout time.Duration, r *os.File, log func(string)) *Lines {
	l := &Lines{name: name, timeout: timeout, r: r, done: make(chan struct{}), changed: make(chan struct{})}
	l.split.emit = func(line string) {
		log(line)
		l.update(func() { l.queue = append(l.queue, line) })
	}
	return l
}

func (l *Lines) read() {
	defer close(l.done)
	io.Copy(io.MultiWriter(&l.text, &l.split), l.r)
	l.r.Close()
	l.split.flush()
	l.update(func() { l.ended = true })
}

func (l *Lines) update(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f()
	close(l.changed)
	l.changed = make(chan struct{})
}

// drain waits for the end of the stream, or for deadline.
func (l *Lines) drain(deadline time.Time) {
	wait := time.NewTimer(time.Until(deadline))
	defer wait.Stop()
	select {
	case <-l.done:
	case <-wait.C:
	}
}

// stop stops reading: it closes the read end and waits for the reader to
// give up.
func (l *Lines) stop() {
	l.r.Close()
	<-l.done
}

// Next returns the next line, without its newline. It fails the test if
// the stream ends first or no line comes within the child's timeout.
func (l *Lines) Next(t testing.TB) string {
	t.Helper()
	return l.take(t, "a line", func(string) bool { return true })
}

// Expect skips lines up to the first that contains s, and returns it. It
// fails the test if the stream ends first or no such line comes within the
// child's timeout.
func (l *Lines) Expect(t testing.TB, s string) string {
	t.Helper()
	return l.take(t, fmt.Sprintf("a line containing %q", s), func(line string) bool { return strings.Contains(line, s) })
}

func (l *Lines) take(t testing.TB, what string, match func(string) bool) string {
	t.Helper()
	timeout := time.NewTimer(l.timeout)
	defer timeout.Stop()
	for {
		l.mu.Lock()
		for len(l.queue) > 0 {
			line := l.queue[0]
			l.queue = l.queue[1:]
			if match(line) {
				l.mu.Unlock()
				return line
			}
		}
		ended, changed := l.ended, l.changed
		l.mu.Unlock()
		if ended {
			t.Fatalf("%s ended without %s", l.name, what)
		}
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("%s: waited %v for %s", l.name, l.timeout, what)
		}
	}
}

// All waits for the end of the stream and returns all of it as written,
// whatever Next and Expect took. It fails the test if the stream does not
// end within the child's timeout.
func (l *Lines) All(t testing.TB) string {
	t.Helper()
	select {
	case <-l.done:
		return l.text.String()
	case <-time.After(l.timeout):
		t.Fatalf("%s did not end within %v", l.name, l.timeout)
		return ""
	}
}

// lineWriter hands each line written to it, without its newline, to emit.
type lineWriter struct {
	mu   sync.Mutex
	part []byte // the start of a line whose newline has not come yet
	emit func(line string)
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(b)
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		w.part = append(w.part, b[:i]...)
		w.emit(string(w.part))
		w.part, b = w.part[:0], b[i+1:]
	}
	w.part = append(w.part, b...)
	return n, nil
}

// flush emits a last line that has no newline.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.part) > 0 {
		w.emit(string(w.part))
		w.part = nil
	}
}

// logger logs to a test until stopped: a child's output may come after
// its test ended, when logging would panic.
type logger struct {
	mu      sync.Mutex
	t       testing.TB
	stopped bool
}

func newLogger(t testing.TB) *logger { return &logger{t: t} }

func (lg *logger) logf(format string, args ...any) {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	if !lg.stopped {
		lg.t.Logf(format, args...)
	}
}

func (lg *logger) stop() {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	lg.stopped = true
}
