package report

import (
	"time"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/steps"
	"github.com/ofmprobe/ofmprobe/probe/steps/nbt"
	"github.com/ofmprobe/ofmprobe/probe/steps/rpc"
	"github.com/ofmprobe/ofmprobe/probe/steps/smb"
	"github.com/ofmprobe/ofmprobe/probe/steps/tcp"
	"github.com/ofmprobe/ofmprobe/probe/targets"
)

// fixtureHost is a finished host as the tests write it down: its facts by field. It grades (catalog.Facts) through
// the host the registry's plan builds from those facts, as a scan's host does.
type fixtureHost struct {
	targets.Target
	Status   string
	Started  time.Time
	Duration time.Duration
	Error    string
	Ports    []engine.PortResult
	NetBIOS  *nbt.NodeStatus
	Session  *nbt.Session
	SMB      *smb.SMBResult
	SMB139   *smb.SMBResult
	Share    *smb.ShareResult
	EPM      *rpc.EPMResult
	Paths    tcp.Paths
}

// fixtureConfig is the steps' configuration of the fixture's run (fixtureRun): the built-in catalog's ports.
var fixtureConfig = steps.Config{Ports: []int{53, 135, 139, 445}, UDPPorts: []int{67, 138, 445}}

func (f *fixtureHost) facts() steps.Facts {
	return steps.Facts{Ports: f.Ports, NetBIOS: f.NetBIOS, Session: f.Session, SMB: f.SMB, SMB139: f.SMB139, Share: f.Share, EPM: f.EPM, Paths: f.Paths}
}

func (f *fixtureHost) engineHost() *engine.Host {
	h := steps.HostFromFacts(fixtureConfig, f.Target, f.facts())
	h.Status, h.Started, h.Duration, h.Error = f.Status, f.Started, f.Duration, f.Error
	return h
}

func (f *fixtureHost) Observe(c catalog.Check) catalog.Observation { return f.engineHost().Observe(c) }
func (f *fixtureHost) Unreachable() bool                           { return f.engineHost().Unreachable() }
