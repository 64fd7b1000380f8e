// Package cmdline is the command line the examples share: a program whose
// first argument names a subcommand, each with flags of its own.
package cmdline

import (
	"flag"
	"fmt"
	"log"
	"os"
)

// Main runs the subcommand that os.Args names, or def without arguments,
// and exits: 0 if it returns nil, 1 with its error (prefixed with name), 2
// for an unknown subcommand, after printing usage.
func Main(name, usage string, def func() error, commands map[string]func(args []string) error) {
	log.SetFlags(0)
	log.SetPrefix(name + ": ")
	var err error
	if len(os.Args) < 2 {
		err = def()
	} else if run, ok := commands[os.Args[1]]; ok {
		err = run(os.Args[2:])
	} else {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// Flags parses a subcommand's args with the flags define registers, and
// returns the arguments after them. A bad flag prints usage and exits 2.
func Flags(usage string, args []string, define func(fs *flag.FlagSet)) []string {
	fs := flag.NewFlagSet("", flag.ExitOnError)
	fs.Usage = func() { fmt.Fprintln(os.Stderr, usage) }
	define(fs)
	fs.Parse(args)
	return fs.Args()
}
