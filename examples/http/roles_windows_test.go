package main

// osRoles are the roles of the Windows-only tests: none.
var osRoles = map[string]func([]string) error{}
