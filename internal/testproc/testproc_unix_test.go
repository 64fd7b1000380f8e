//go:build !windows

package testproc_test

import "strings"

// killedWant is what killedStatus accepts: a kill is a signal here.
const killedWant, hardKilledWant = "signal: killed", "signal: killed"

func killedStatus(err error) bool {
	return err != nil && strings.Contains(err.Error(), "signal: killed")
}
func hardKilledStatus(err error) bool { return killedStatus(err) }
