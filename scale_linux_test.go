package shmlink

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// procStatus returns the named fields of /proc/PID/status.
func procStatus(pid int, fields ...string) (map[string]string, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		for _, want := range fields {
			if ok && k == want {
				out[k] = strings.TrimSpace(v)
			}
		}
	}
	return out, sc.Err()
}

// processThreads returns the number of threads of process pid, and its
// memory as /proc/PID/status says, for the log.
func processThreads(pid int) (threads int, detail string, err error) {
	st, err := procStatus(pid, "Threads", "VmRSS", "RssAnon", "RssShmem")
	if err != nil {
		return 0, "", err
	}
	threads, err = strconv.Atoi(st["Threads"])
	return threads, fmt.Sprintf(", VmRSS %s (anon %s, shmem %s)", st["VmRSS"], st["RssAnon"], st["RssShmem"]), err
}

// idleThreadLimit bounds the threads of a process with n idle links: tens,
// whatever n (parked readers hold no thread).
func idleThreadLimit(int) int { return 60 }
