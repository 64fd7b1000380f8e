package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/shmlink/shmlink"
)

func runLs(args []string) error {
	fs := newFlags("ls", "", "Lists the links in this user's runtime directory ($"+shmlink.RuntimeDirEnv+
		", else $XDG_RUNTIME_DIR/shmlink,\nelse shmlink-UID in the temporary directory): each name with its server's pid,\n"+
		"number of clients and start time. A name whose server died without closing is\nmarked stale; the next listen on it replaces it.")
	if _, err := fs.parse(args, 0, 0); err != nil {
		return err
	}
	links, err := shmlink.ListLinks()
	if err != nil {
		return err
	}
	now := time.Now()
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tPID\tCLIENTS\tSINCE\tSTATE")
	for _, l := range links {
		switch {
		case l.Stale:
			fmt.Fprintf(w, "%s\t-\t-\t-\tstale\n", l.Name)
		case l.Err != nil:
			fmt.Fprintf(w, "%s\t-\t-\t-\tno answer: %s\n", l.Name, oneLine(l.Err))
		default:
			fmt.Fprintf(w, "%s\t%d\t%d\t%s\tlive\n", l.Name, l.PID, l.Clients, since(l.Since, now))
		}
	}
	return w.Flush()
}

func runStat(args []string) error {
	fs := newFlags("stat", "NAME", "Asks the server of the link NAME who it is: its pid, its number of clients\n"+
		"and when it started listening. The server answers without any client\nseeing the question.")
	pos, err := fs.parse(args, 1, 1)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := shmlink.Probe(ctx, pos[0])
	if err != nil {
		return err
	}
	fmt.Printf("name:     %s\nserver:   pid %d\nclients:  %d\nsince:    %s\n",
		pos[0], info.PID, info.Clients, since(info.Since, time.Now()))
	return nil
}

// since formats a start time for a listing: the local time and how long ago.
func since(t, now time.Time) string {
	return fmt.Sprintf("%s (%s ago)", t.Format("2006-01-02 15:04:05"), now.Sub(t).Round(time.Second))
}
