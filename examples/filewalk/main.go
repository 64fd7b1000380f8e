// Filewalk streams a directory walk from a child process: a client starts a
// server process; the server walks a directory tree and streams one record
// per file (path, size, mode, modification time) through a link; an end
// marker finishes the stream; the client prints every entry, then a summary.
//
//	go run ./examples/filewalk [dir]
//
// The client and the server are this same program: the client re-runs
// itself with serveEnv set to the link name.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/shmlink/shmlink"
)

const serveEnv = "FILEWALK_SERVE"

func main() {
	log.SetFlags(0)
	if name := os.Getenv(serveEnv); name != "" {
		log.SetPrefix("filewalk server: ")
		if err := serve(name, os.Args[1]); err != nil {
			log.Fatal(err)
		}
		return
	}
	log.SetPrefix("filewalk: ")
	dir := "."
	switch len(os.Args) {
	case 1:
	case 2:
		dir = os.Args[1]
	default:
		log.Fatal("usage: filewalk [dir]")
	}
	if err := client(dir); err != nil {
		log.Fatal(err)
	}
}

// client starts the server, prints what it streams and checks the end.
func client(dir string) error {
	name := "filewalk-" + strconv.Itoa(os.Getpid())
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	server := exec.Command(exe, dir)
	server.Env = append(os.Environ(), serveEnv+"="+name)
	server.Stdout, server.Stderr = os.Stderr, os.Stderr
	if err := server.Start(); err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	// If the server fails before it listens, stop waiting for it. One that
	// exits cleanly may do so before Dial returns (a small tree streams in
	// microseconds): what it sent is in the link's memory, which is ours.
	ctx, cancel := context.WithCancelCause(context.Background())
	serverDone := make(chan error, 1)
	go func() {
		err := server.Wait()
		if err != nil {
			cancel(fmt.Errorf("server exited: %w", err))
		}
		serverDone <- err
	}()

	// The server needs a moment to start listening; Wait has Dial connect
	// as soon as it does.
	dctx, stop := context.WithTimeout(ctx, 10*time.Second)
	c, err := shmlink.Dial(dctx, name, &shmlink.Config{Wait: true})
	stop()
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			return cause
		}
		return err
	}
	defer c.Close()

	start := time.Now()
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	var entries, files, bytes uint64
	for {
		m, err := c.ReadMessage()
		if err != nil {
			return fmt.Errorf("the stream ended before its end marker: %w", err)
		}
		r, err := parseRecord(m)
		if err != nil {
			return err
		}
		if r.kind == kindFailure {
			return errors.New("server: " + r.text)
		}
		if r.kind == kindEnd {
			if r.count != entries {
				return fmt.Errorf("server sent %d entries, %d arrived", r.count, entries)
			}
			break
		}
		entries++
		if r.mode.IsRegular() {
			files++
			bytes += uint64(r.size)
		}
		fmt.Fprintf(out, "%v %12d %s %s\n", r.mode, r.size, r.mtime.Format("2006-01-02 15:04"), printable(r.path))
	}
	elapsed := time.Since(start)
	out.Flush()
	fmt.Fprintf(os.Stderr, "%d entries, %d files, %d bytes in files, streamed in %v (%.0f entries/s)\n",
		entries, files, bytes, elapsed.Round(time.Microsecond), float64(entries)/elapsed.Seconds())
	c.Close()
	if err := <-serverDone; err != nil {
		return fmt.Errorf("server: %w", err)
	}
	return nil
}

// printable returns a path as it is if it prints safely on one line, and
// Go-quoted if it holds anything else (a newline, invalid UTF-8, a quote).
func printable(path string) string {
	if q := strconv.Quote(path); q[1:len(q)-1] != path {
		return q
	}
	return path
}

// serve accepts the client that started it and streams the tree at dir.
func serve(name, dir string) error {
	l, err := shmlink.Listen(name, nil)
	if err != nil {
		return err
	}
	// Bounded, so that a client that died before dialling does not leave
	// the server waiting for ever.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := l.AcceptContext(ctx)
	l.Close()
	if err != nil {
		return err
	}
	defer c.Close() // after the end marker: the client reads everything first

	var sent uint64
	var rec []byte
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil {
			var fi fs.FileInfo
			if fi, err = d.Info(); err == nil {
				sent++
				rec = appendEntry(rec[:0], path, fi)
				return c.WriteMessage(rec)
			}
		}
		if path == dir {
			return err // nothing to walk
		}
		log.Print(err) // an unreadable directory or a vanished file: carry on
		return nil
	})
	if err != nil {
		// The client reports it: the stream ends with the failure.
		return c.WriteMessage(appendFailure(nil, err))
	}
	return c.WriteMessage(appendEnd(nil, sent))
}
