package shmlink

// osRoles are the roles of the Windows-only tests.
var osRoles = map[string]func(args []string) error{}
