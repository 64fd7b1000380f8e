package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/shmlink/shmlink"
)

func runLs(args []string) error {
	var asJSON bool
	fs := newFlags("ls", "", "Lists the links in this user's runtime directory ($"+shmlink.RuntimeDirEnv+
		", else $XDG_RUNTIME_DIR/shmlink,\nelse shmlink-UID in the temporary directory): each name with its server's pid,\n"+
		"number of clients, start time and the messages its links carried each way.\nA name whose server died without closing is "+
		"marked stale; the next listen on it\nreplaces it.")
	fs.BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	if _, err := fs.parse(args, 0, 0); err != nil {
		return err
	}
	links, err := shmlink.ListLinks()
	if err != nil {
		return err
	}
	rows := make([]lsLine, len(links))
	for i, l := range links {
		rows[i] = lsLine{Name: l.Name, Path: l.Path, State: "live"}
		switch {
		case l.Stale:
			rows[i].State = "stale"
			continue
		case l.Err != nil:
			rows[i].State = "no answer: " + oneLine(l.Err)
			continue
		}
		rows[i].PID, rows[i].Clients, rows[i].Since = l.PID, l.Clients, l.Since
		// The counters need a second question; a server that does not
		// answer it is still listed.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, ls, err := shmlink.Stat(ctx, l.Path)
		cancel()
		if err == nil {
			for _, s := range ls {
				rows[i].Sent += s.Sent.Messages
				rows[i].Received += s.Received.Messages
			}
		}
	}
	if asJSON {
		return printJSON(rows)
	}
	now := time.Now()
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tPID\tCLIENTS\tSENT\tRECEIVED\tSINCE\tSTATE")
	for _, r := range rows {
		if r.PID == 0 {
			fmt.Fprintf(w, "%s\t-\t-\t-\t-\t-\t%s\n", r.Name, r.State)
			continue
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%s\t%s\n", r.Name, r.PID, r.Clients, r.Sent, r.Received, since(r.Since, now), r.State)
	}
	return w.Flush()
}

// lsLine is one line of ls; Sent and Received count the messages of the
// server's links now open.
type lsLine struct {
	Name     string    `json:"name"`
	Path     string    `json:"path"`
	State    string    `json:"state"`
	PID      int       `json:"pid,omitempty"`
	Clients  int       `json:"clients"`
	Since    time.Time `json:"since,omitzero"`
	Sent     uint64    `json:"messages_sent"`
	Received uint64    `json:"messages_received"`
}

func runStat(args []string) error {
	var asJSON bool
	fs := newFlags("stat", "NAME", "Asks the server of the link NAME who it is (its pid, its number of clients,\n"+
		"when it started listening) and shows each link it serves with its live\ncounters, as the server sees them: messages and bytes each way, bytes in\n"+
		"each ring now and at most, how often each side waited, slept after its\nspin ran out, and woke the other. No client sees the question.")
	fs.BoolVar(&asJSON, "json", false, "print JSON instead of text")
	pos, err := fs.parse(args, 1, 1)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, links, err := shmlink.Stat(ctx, pos[0])
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(struct {
			Name string `json:"name"`
			shmlink.ServerInfo
			Links []shmlink.LinkStats `json:"links"`
		}{pos[0], info, links})
	}
	now := time.Now()
	fmt.Printf("name:     %s\nserver:   pid %d\nclients:  %d\nsince:    %s\n",
		pos[0], info.PID, info.Clients, since(info.Since, now))
	if len(links) == 0 {
		return nil
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "\nCLIENT\tDIR\tMESSAGES\tBYTES\tFILL\tHIGH\tWAITS\tSLEEPS\tWAKEUPS\tCONNECTED\t")
	for _, l := range links {
		for _, d := range []struct {
			dir string
			s   shmlink.DirectionStats
		}{{"out", l.Sent}, {"in", l.Received}} {
			fmt.Fprintf(w, "%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", l.PeerPID, d.dir, d.s.Messages, d.s.Bytes,
				d.s.Fill, d.s.HighWater, d.s.Waits, d.s.Sleeps, d.s.Wakeups, now.Sub(l.Since).Round(time.Second))
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Printf("\nout: server to client; in: client to server; rings of %d bytes\n", links[0].RingSize)
	return nil
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// since formats a start time for a listing: the local time and how long ago.
func since(t, now time.Time) string {
	return fmt.Sprintf("%s (%s ago)", t.Format("2006-01-02 15:04:05"), now.Sub(t).Round(time.Second))
}
