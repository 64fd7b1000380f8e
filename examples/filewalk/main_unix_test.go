//go:build !windows

package main

// oddFiles are file names that must be printed quoted, with their
// contents: Linux allows any byte but '/' and NUL in a name.
var oddFiles = map[string]string{
	"line\nbreak":      "a newline in the name",
	"bad\xffutf8":      "not UTF-8",
	`quote" and space`: "",
}

// oddQuoted is how the output shows them.
var oddQuoted = []string{`/line\nbreak"`, `/bad\xffutf8"`, `/quote\" and space"`}
