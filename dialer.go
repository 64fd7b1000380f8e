package shmlink

import (
	"context"
	"net"
)

// Dialer opens links with the same settings each time. Its DialContext has
// the signature that http.Transport.DialContext and, wrapped in a
// one-line closure, grpc.WithContextDialer expect, and it returns a nil
// net.Conn with its error, never a nil *Conn in an interface.
//
//	d := &shmlink.Dialer{Name: "api"}
//	client := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
//	client.Get("http://api/status") // over the link "api"
type Dialer struct {
	// Name, if set, is the link every dial opens, whatever address the
	// caller passes: an HTTP client dials "host:port" from its URLs.
	Name string
	// Config is used for every link; nil means the defaults.
	Config *Config
}

// DialContext opens a link to d.Name, or, if that is empty, to the link
// named addr. network is not looked at: a link is a link, whatever the
// caller thinks it dials.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	name := addr
	if d.Name != "" {
		name = d.Name
	}
	c, err := Dial(ctx, name, d.Config)
	if err != nil {
		return nil, err
	}
	return c, nil
}
