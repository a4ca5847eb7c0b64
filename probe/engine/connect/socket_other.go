//go:build !linux

package connect

import "errors"

// poller is a stand-in: the connector needs Linux's epoll and error queue (IP_RECVERR).
type poller struct{}

type (
	sockaddr4 struct{}
	sockaddr6 struct{}
)

const errQueueBuffer = 0

func openPoller() (poller, error) { return poller{}, errors.ErrUnsupported }

func (p *poller) wake() {}

func (p *poller) close() error { return nil }

func (c *Connector) dial(p *attempt) (int, error) { return -1, errors.ErrUnsupported }

func (c *Connector) closeSocket(fd int, o Outcome) {}

func readICMP(fd int, buf []byte) ICMPInfo { return ICMPInfo{} }

func (c *Connector) watch(p *attempt, fd int) {}

func (c *Connector) runPoller() { c.wg.Done() }

func isPushback(err error) bool { return false }

func classify(err error) Outcome { return Failed }
