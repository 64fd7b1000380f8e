// Command shmlink works with shmlink links from the shell: netcat-style
// listen and dial, a listing of live links, and a benchmark against the
// usual alternatives.
//
//	shmlink listen NAME > out        # serve one client, the link to stdout
//	tar c dir | shmlink dial NAME    # stdin to the link
//	shmlink ls                       # live links of this user
//	shmlink bench --quick            # shmlink against unix socket, pipe, TCP
//
// Every subcommand takes --help. Errors are one line on standard error and
// a non-zero exit status: 1 for a failure, 2 for a usage mistake.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/shmlink/shmlink"
)

// command is one subcommand. run gets the arguments after its name.
type command struct {
	name, summary string
	run           func(args []string) error
}

// commands lists the subcommands in the order --help shows them. It is
// filled in init because the help command refers to it.
var commands []command

func init() {
	commands = []command{
		{"listen", "serve one client: stdin to the link, the link to stdout", runListen},
		{"dial", "connect to a server: stdin to the link, the link to stdout", runDial},
		{"ls", "list this user's links and their servers", runLs},
		{"stat", "show one link's server", runStat},
		{"bench", "measure shmlink against unix socket, pipe and loopback TCP, each written per message and buffered", runBench},
	}
}

func main() { os.Exit(run(os.Args[1:])) }

// run runs the command line args and returns the exit status.
func run(args []string) int {
	if len(args) == 0 {
		usage(os.Stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 && name == "help" {
			return run([]string{args[1], "--help"})
		}
		usage(os.Stdout)
		return 0
	}
	var cmd *command
	for i := range commands {
		if commands[i].name == name {
			cmd = &commands[i]
		}
	}
	if cmd == nil {
		fmt.Fprintf(os.Stderr, "shmlink: unknown command %q (run 'shmlink --help')\n", name)
		return 2
	}
	err := cmd.run(args[1:])
	var uerr usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &uerr):
		fmt.Fprintf(os.Stderr, "shmlink %s: %s (run 'shmlink %[1]s --help')\n", name, oneLine(err))
		return 2
	}
	fmt.Fprintf(os.Stderr, "shmlink %s: %s\n", name, oneLine(err))
	switch {
	case errors.Is(err, shmlink.ErrPeerLost):
		return 3
	case errors.Is(err, shmlink.ErrCorrupt):
		return 4
	}
	return 1
}

// oneLine renders err for the error line. The library prefixes each error
// once with "shmlink: ", which the line already says.
func oneLine(err error) string {
	s := strings.TrimPrefix(err.Error(), "shmlink: ")
	return strings.ReplaceAll(s, "\n", "; ")
}

func usage(w io.Writer) {
	fmt.Fprint(w, "usage: shmlink COMMAND [flags] [args]\n\n"+
		"shmlink moves data between processes on this machine through shared memory.\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nRun 'shmlink COMMAND --help' for a command's flags.\n")
}

// usageError is a mistake on the command line, as opposed to a failure.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// flags is a subcommand's flag set with what its --help says.
type flags struct {
	*flag.FlagSet
	name, synopsis, doc string
}

// newFlags returns the flags of a subcommand. Their parse errors come back
// from parseArgs as one usageError instead of being printed with the whole
// usage; --help prints synopsis, doc and the flags on standard output.
func newFlags(name, synopsis, doc string) *flags {
	fs := flag.NewFlagSet("shmlink "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flags{fs, name, synopsis, doc}
}

func (f *flags) help() {
	fmt.Fprintf(os.Stdout, "usage: shmlink %s %s\n\n%s\n", f.name, f.synopsis, f.doc)
	if hasFlags(f.FlagSet) {
		fmt.Fprint(os.Stdout, "\nflags:\n")
		f.SetOutput(os.Stdout)
		f.PrintDefaults()
		f.SetOutput(io.Discard)
	}
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// parse parses args, accepting flags before, between and after
// the positional arguments, and checks that there are between lo and hi
// of those.
func (fs *flags) parse(args []string, lo, hi int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.help()
				return nil, err
			}
			return nil, usageError{err}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...) // everything after "--" is positional
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	switch {
	case len(pos) < lo:
		return nil, usageError{fmt.Errorf("missing argument")}
	case len(pos) > hi:
		return nil, usageError{fmt.Errorf("unexpected argument %q", pos[hi])}
	}
	return pos, nil
}
