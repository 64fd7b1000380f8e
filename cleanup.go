package shmlink

// cleanup undoes the steps of a setup that failed part-way, last first.
type cleanup []func() error

func (c *cleanup) add(f func() error) { *c = append(*c, f) }

// onError runs the steps if *err is set; defer it.
func (c *cleanup) onError(err *error) {
	if *err == nil {
		return
	}
	for i := len(*c) - 1; i >= 0; i-- {
		(*c)[i]()
	}
}
