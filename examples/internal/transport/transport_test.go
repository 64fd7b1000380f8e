package transport

import "testing"

func TestKind(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:8080":    "tcp",
		"localhost:0":       "tcp",
		"[::1]:9000":        "tcp",
		":9000":             "tcp",
		"api":               "shmlink",
		"api:v2":            "shmlink", // a link name may hold a colon
		"api:99999":         "shmlink", // not a port
		"/run/app/api.sock": "shmlink",
		"unix:/tmp/s":       "unix",
	} {
		if got := Kind(addr); got != want {
			t.Errorf("Kind(%q) = %s, want %s", addr, got, want)
		}
	}
}
