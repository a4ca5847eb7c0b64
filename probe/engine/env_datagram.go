package engine

import (
	"sync"

	"github.com/ofmprobe/ofmprobe/probe/engine/datagram"
)

// DatagramConfig configures the shared UDP mux.
type DatagramConfig = datagram.Config

// DatagramStats counts what the shared UDP mux did.
type DatagramStats = datagram.Stats

func (e *Env) datagramStats() DatagramStats {
	if e.mux.mux == nil {
		return DatagramStats{}
	}
	return e.mux.mux.Stats()
}

type muxState struct {
	once sync.Once
	mux  *datagram.Mux
	err  error
}

// Datagrams returns the scan's shared UDP mux, opening it on first use.
func (e *Env) Datagrams() (*datagram.Mux, error) {
	e.mux.once.Do(func() {
		cfg := e.opts.Datagram
		if cfg.Pace == nil && e.limiter != nil {
			cfg.Pace = e.Pace
		}
		e.mux.mux, e.mux.err = datagram.Open(cfg)
	})
	return e.mux.mux, e.mux.err
}

// closeMux closes the mux, when one was opened.
func (e *Env) closeMux() {
	if e.mux.mux != nil {
		e.mux.mux.Close()
	}
}
