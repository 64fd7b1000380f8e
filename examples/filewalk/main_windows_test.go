package main

// oddFiles are file names that must be printed quoted, with their
// contents: Windows forbids control characters and quotes in names, so a
// space and non-ASCII letters are what is left (and every Windows path is
// quoted anyway, for its backslashes).
var oddFiles = map[string]string{
	"space and ünïcödé": "non-ASCII in the name",
}

// oddQuoted is how the output shows them, with the escaped separator
// before.
var oddQuoted = []string{`\\space and ünïcödé"`}
