// Package testproc runs part of a test in another process: the test binary
// re-executes itself as a child that plays a named role (a server, a client,
// a hostile peer, or the package's own main function) while the test drives
// it from the parent. It is the one harness for the tests of every package
// of this module; nothing outside tests uses it.
//
// A package's TestMain hands its roles to Main:
//
//	func TestMain(m *testing.M) {
//		testproc.Main(m, map[string]func(args []string) error{
//			"echo-server": childEchoServer,
//		})
//	}
//
// and a test starts one with Start, or Options.Start:
//
//	srv := testproc.Options{WaitReady: true}.Start(t, "echo-server", "name")
//	srv.Kill(t)
//
// Options.Exec runs a program other than the test binary (a C peer the
// test compiled, say) under the same harness.
//
// The role and its arguments travel on the child's command line, so any
// argument survives as it is. The environment only marks the process as a
// child (see envChild).
package testproc

import (
	"fmt"
	"os"
	"testing"
)

// envChild marks a child. Start sets it to roleInArgv: the role is the
// first command-line argument and its arguments are the rest. In a child,
// Main sets it to the role's name before running it, so that a program that
// re-executes itself (through os.Executable, with a command line of its
// own) runs the same role again, with that command line as its arguments.
const envChild = "SHMLINK_TESTPROC"

// roleInArgv is the value of envChild in a child that Start started.
const roleInArgv = "-"

// readyLine is what Ready prints and what WaitReady waits for.
const readyLine = "ready"

// Main runs the tests, or, in a child, its role. In a child it sets
// os.Args to the test binary's path followed by the role's arguments, runs
// the role and exits: with status 0 if the role returned nil, 1 if it
// returned an error (printed on stderr), 2 if the role is not in roles. A
// role may also exit by itself with a status of its own. Otherwise Main
// runs the tests, then each of after (to remove what the tests shared,
// say), and exits with m.Run's status.
func Main(m *testing.M, roles map[string]func(args []string) error, after ...func()) {
	mark, child := os.LookupEnv(envChild)
	if !child {
		code := m.Run()
		for _, f := range after {
			f()
		}
		os.Exit(code)
	}
	os.Exit(runChild(mark, roles))
}

func runChild(mark string, roles map[string]func(args []string) error) int {
	role, args := mark, os.Args[1:]
	if mark == roleInArgv {
		if len(os.Args) < 2 {
			fmt.Fprintln(os.Stderr, "testproc: child started without a role")
			return 2
		}
		role, args = os.Args[1], os.Args[2:]
	}
	run, ok := roles[role]
	if !ok {
		fmt.Fprintf(os.Stderr, "testproc: unknown role %q\n", role)
		return 2
	}
	os.Args = append([]string{os.Args[0]}, args...)
	if err := childSetup(); err != nil {
		fmt.Fprintf(os.Stderr, "testproc: %v\n", err)
		return 1
	}
	if err := os.Setenv(envChild, role); err != nil {
		fmt.Fprintf(os.Stderr, "testproc: %v\n", err)
		return 1
	}
	if err := run(args); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", role, err)
		return 1
	}
	return 0
}

// Program is the role of a program's main function, for the tests of a
// command or an example: main runs with os.Args as the program would see
// them, the role's arguments after the program's path. A main that returns
// exits 0; os.Exit and log.Fatal in main exit as they would the program, and
// so does a copy of the program that main starts from os.Executable.
func Program(main func()) func(args []string) error {
	return func([]string) error {
		main()
		return nil
	}
}

// Ready tells a parent that waits for it (Options.WaitReady) that this
// child's role is set up: it prints the line "ready" on stdout.
func Ready() { fmt.Println(readyLine) }
