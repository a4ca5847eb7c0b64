// Package report writes scan results: one writer per format, each writing to an io.Writer. Hosts arrive as they finish;
// streaming formats write them at once, whole-document formats sort them and write at the end.
package report

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/netstat"
	smbwire "github.com/ofmprobe/ofmprobe/probe/smb"
	"github.com/ofmprobe/ofmprobe/probe/steps"
	"github.com/ofmprobe/ofmprobe/probe/steps/nbt"
	"github.com/ofmprobe/ofmprobe/probe/steps/rpc"
	"github.com/ofmprobe/ofmprobe/probe/steps/smb"
	"github.com/ofmprobe/ofmprobe/probe/steps/tcp"
)

// SchemaVersion is the version of the JSON and NDJSON report schema. It changes when a field is removed or changes
// meaning; added fields keep the version. Version 2 moved each requirement's title, severity, why and fix out of the
// hosts' results into the run record's catalog.
const SchemaVersion = 2

// oldestReadable is the oldest schema Read still reads: a schema 1 report's results carry their own texts.
const oldestReadable = 1

// Run describes one scan: who ran it, when, and with which settings. It never holds credentials.
type Run struct {
	Tool     string    `json:"tool"`
	Version  string    `json:"version"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	// Vantage lists the scanning machine's own non-loopback addresses: firewall verdicts hold only from there.
	Vantage     []string   `json:"vantage"`
	Profiles    []string   `json:"profiles"`
	Options     RunOptions `json:"options"`
	Interrupted bool       `json:"interrupted"`
	// Catalog is the text of every requirement of the profiles, written once: the hosts' results carry only the
	// requirement's ID, outcome and evidence.
	Catalog []CatalogProfile `json:"catalog"`
	// PortTable is the catalog's table of the ports OFM and Windows use, with the Windows services on each: the
	// causes' actions name them.
	PortTable []catalog.Port `json:"port_table"`
}

// RunOptions are the scan settings a report records.
type RunOptions struct {
	Ports        []int   `json:"ports"`
	UDPPorts     []int   `json:"udp_ports"`
	TimeoutMS    float64 `json:"timeout_ms"`
	Retries      int     `json:"retries"`
	UDPTimeoutMS float64 `json:"udp_timeout_ms"`
	UDPRetries   int     `json:"udp_retries"`
	Concurrency  int     `json:"concurrency"`
	PerHost      int     `json:"per_host"`
	OFMPort      int     `json:"ofm_port,omitempty"`
	// Rate is the cap on new connections and datagrams per second; 0: none.
	Rate float64 `json:"rate,omitempty"`
	// Shard is the part of the targets this run scanned ("2/4"), with the Seed that keys the split.
	Shard string `json:"shard,omitempty"`
	Seed  uint64 `json:"seed,omitempty"`
	// Steps are the --steps the run was narrowed to; empty: every step the profiles need.
	Steps []string `json:"steps,omitempty"`
	// HostsInFlight is the bound on hosts in flight when not the default: --hosts-in-flight, or what --memory gave.
	HostsInFlight int `json:"hosts_in_flight,omitempty"`
	// Hops is the most hops the hop finder traced a silent TCP port through; 0: it was off.
	Hops int `json:"hops,omitempty"`
	// TCPProbe is how the IPv4 connect probes went out: "syn" (raw SYNs) or "connect" (full connects); empty when
	// not recorded (reports from before it, the exporter's).
	TCPProbe string `json:"tcp_probe,omitempty"`
}

// HostRecord is one host in a report: what the probes saw and the grade per profile.
type HostRecord struct {
	Address string `json:"address"`
	Name    string `json:"name,omitempty"`
	Status  string `json:"status"`
	Error   string `json:"error,omitempty"`
	// Aborted says the scan was aborted while this host was probed: some of its steps did not run. A resumed
	// scan probes it again.
	Aborted    bool         `json:"aborted,omitempty"`
	Started    time.Time    `json:"started"`
	DurationMS float64      `json:"duration_ms"`
	Ports      []PortRecord `json:"ports"`
	// NetBIOS is what node status on UDP 137 said, when it was asked.
	NetBIOS *NetBIOSRecord `json:"netbios,omitempty"`
	// Session is the NetBIOS session request on TCP 139, when it was made.
	Session *SessionRecord `json:"session,omitempty"`
	// SMB is the negotiate on TCP 445; SMB139 the one over a NetBIOS session on 139, made when 445 gave no SMB.
	SMB    *SMBRecord `json:"smb,omitempty"`
	SMB139 *SMBRecord `json:"smb139,omitempty"`
	// Share is the OFMLOG$ mount with the OFM files and the IPC$ tree connect, when it was attempted.
	Share *ShareRecord `json:"share,omitempty"`
	// EPM is the RPC endpoint-mapper bind on TCP 135, when it was made.
	EPM *EPMRecord `json:"epm,omitempty"`
	// NameMismatch, when set, says that the NetBIOS node status and the SMB server (its NTLM challenge) give the
	// host different computer names, and which one a session on 139 needs.
	NameMismatch string `json:"name_mismatch,omitempty"`
	// Hops is where each silent TCP port's SYN stops, when the hop finder traced it (--hops).
	Hops tcp.Paths `json:"hops,omitempty"`
	// Netstat explains each probed port with the host's own netstat output, when --netstat gave one for it.
	Netstat  []netstat.Verdict `json:"netstat,omitempty"`
	Profiles []catalog.Grading `json:"profiles"`
}

// addr is the host's address, or the zero Addr when it does not parse.
func (r HostRecord) addr() netip.Addr {
	a, _ := netip.ParseAddr(r.Address)
	return a
}

// SMBRecord is an SMB negotiate in a report: the probe's facts and the round-trip time of the first negotiate.
type SMBRecord struct {
	smb.SMBResult
	RTTMS float64 `json:"rtt_ms,omitempty"`
}

// ShareRecord is the share check in a report: the probe's facts and how long the whole check took.
type ShareRecord struct {
	smb.ShareResult
	DurationMS float64 `json:"duration_ms"`
}

// EPMRecord is the endpoint-mapper bind in a report.
type EPMRecord struct {
	rpc.EPMResult
	RTTMS float64 `json:"rtt_ms,omitempty"`
}

// NetBIOSRecord is a host's NetBIOS node status in a report.
type NetBIOSRecord struct {
	State         string            `json:"state"`
	Evidence      string            `json:"evidence"`
	Attempts      int               `json:"attempts"`
	RTTMS         float64           `json:"rtt_ms,omitempty"`
	Names         []nbt.NetBIOSName `json:"names,omitempty"`
	ComputerName  string            `json:"computer_name,omitempty"`
	Workgroup     string            `json:"workgroup,omitempty"`
	FileServer    bool              `json:"file_server"`
	MasterBrowser bool              `json:"master_browser"`
	MAC           string            `json:"mac,omitempty"`
}

// SessionRecord is a host's NetBIOS session request in a report.
type SessionRecord struct {
	State    string   `json:"state"`
	Evidence string   `json:"evidence"`
	Called   []string `json:"called"`
	RTTMS    float64  `json:"rtt_ms,omitempty"`
}

// PortRecord is one port's state in a report.
type PortRecord struct {
	Port     int     `json:"port"`
	Protocol string  `json:"protocol"`
	State    string  `json:"state"`
	RTTMS    float64 `json:"rtt_ms,omitempty"`
	Attempts int     `json:"attempts"`
	Evidence string  `json:"evidence"`
}

// NewHostRecord builds a host's report record from the host, its facts and its gradings.
func NewHostRecord(h *engine.Host, f steps.Facts, gradings []catalog.Grading) HostRecord {
	rec := HostRecord{
		Address:    h.Addr.String(),
		Name:       h.Name,
		Status:     h.Status,
		Error:      h.Error,
		Aborted:    h.Aborted,
		Started:    h.Started.UTC(),
		DurationMS: millis(h.Duration),
		Ports:      make([]PortRecord, 0, len(f.Ports)),
		Profiles:   gradings,
	}
	if nb := f.NetBIOS; nb != nil {
		rec.NetBIOS = &NetBIOSRecord{
			State: string(nb.State), Evidence: nb.Evidence, Attempts: nb.Attempts, RTTMS: millis(nb.RTT), Names: nb.Names,
			ComputerName: nb.ComputerName, Workgroup: nb.Workgroup, FileServer: nb.FileServer, MasterBrowser: nb.MasterBrowser, MAC: nb.MAC,
		}
	}
	if ss := f.Session; ss != nil {
		rec.Session = &SessionRecord{State: string(ss.State), Evidence: ss.Evidence, Called: ss.Called, RTTMS: millis(ss.RTT)}
	}
	if r := f.SMB; r != nil {
		rec.SMB = &SMBRecord{SMBResult: *r, RTTMS: millis(r.RTT)}
	}
	if r := f.SMB139; r != nil {
		rec.SMB139 = &SMBRecord{SMBResult: *r, RTTMS: millis(r.RTT)}
	}
	if r := f.Share; r != nil {
		rec.Share = &ShareRecord{ShareResult: *r, DurationMS: millis(r.Duration)}
	}
	if r := f.EPM; r != nil {
		rec.EPM = &EPMRecord{EPMResult: *r, RTTMS: millis(r.RTT)}
	}
	rec.NameMismatch = nameMismatch(rec)
	rec.Hops = f.Paths
	for _, p := range f.Ports {
		rec.Ports = append(rec.Ports, PortRecord{
			Port: p.Port, Protocol: p.Protocol, State: string(p.State), RTTMS: millis(p.RTT), Attempts: p.Attempts, Evidence: p.Evidence,
		})
	}
	return rec
}

// Identity is who the host's SMB server says it is (the NTLMSSP challenge of the negotiate on 445, else on 139);
// nil when neither gave one.
func (r HostRecord) Identity() *smbwire.NTLMIdentity {
	for _, s := range []*SMBRecord{r.SMB, r.SMB139} {
		if s != nil && s.Identity != nil {
			return s.Identity
		}
	}
	return nil
}

// nameMismatch compares the computer name of the host's node status with its SMB server's. Windows refuses a
// NetBIOS session to a called name that is not its own ("called name not present"), so the name the node status
// gives then does not open a session on 139: the note says which name does.
func nameMismatch(r HostRecord) string {
	id := r.Identity()
	if r.NetBIOS == nil || r.NetBIOS.ComputerName == "" || id == nil || id.NetBIOSComputer == "" || strings.EqualFold(r.NetBIOS.ComputerName, id.NetBIOSComputer) {
		return ""
	}
	note := fmt.Sprintf("node status calls the host %s, its SMB server calls itself %s (NTLM)", r.NetBIOS.ComputerName, id.NetBIOSComputer)
	switch {
	case r.Session != nil && r.Session.State == "positive" && len(r.Session.Called) > 0:
		note += fmt.Sprintf("; the session on 139 was accepted as %s", r.Session.Called[len(r.Session.Called)-1])
	case r.Session != nil:
		note += fmt.Sprintf("; a session on 139 needs the called name %s<20> (or *SMBSERVER)", id.NetBIOSComputer)
	}
	return note
}

// millis is a duration in milliseconds, rounded to microseconds so reports stay readable.
func millis(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}

// Grade returns the host's grade for a profile, or "" if it was not graded against it.
func (r HostRecord) Grade(profile string) catalog.HostGrade {
	for _, g := range r.Profiles {
		if g.Profile == profile {
			return g.Grade
		}
	}
	return ""
}

// Summary counts hosts per grade for every profile.
type Summary struct {
	Hosts int `json:"hosts"`
	// Grades maps a profile to the number of hosts per grade.
	Grades map[string]map[catalog.HostGrade]int `json:"grades"`
	// Internal counts hosts whose probes failed inside ofmprobe.
	Internal int `json:"internal"`
	// Causes groups the requirements that failed, warned or went unverified on the hosts by root cause, the most
	// hosts first.
	Causes []Cause `json:"causes"`
	causes *causeSet
}

// Add counts one host.
func (s *Summary) Add(r HostRecord) {
	if s.Grades == nil {
		s.Grades = map[string]map[catalog.HostGrade]int{}
	}
	s.Hosts++
	if r.Status == engine.HostInternal {
		s.Internal++
	}
	if s.causes == nil {
		s.causes = &causeSet{}
	}
	s.causes.add(s.Hosts, r)
	for _, g := range r.Profiles {
		if s.Grades[g.Profile] == nil {
			s.Grades[g.Profile] = map[catalog.HostGrade]int{}
		}
		s.Grades[g.Profile][g.Grade]++
	}
}

// AllPassed reports whether every host passed every profile (pass or warn) and none failed internally.
func (s *Summary) AllPassed() bool {
	if s.Internal > 0 {
		return false
	}
	for _, counts := range s.Grades {
		for g, n := range counts {
			if n > 0 && !g.Passed() {
				return false
			}
		}
	}
	return true
}

// sortRecords orders hosts by address, then name.
func sortRecords(recs []HostRecord) {
	slices.SortFunc(recs, func(a, b HostRecord) int {
		pa, errA := netip.ParseAddr(a.Address)
		pb, errB := netip.ParseAddr(b.Address)
		if errA == nil && errB == nil {
			if c := pa.Compare(pb); c != 0 {
				return c
			}
		}
		return cmp.Or(cmp.Compare(a.Address, b.Address), cmp.Compare(a.Name, b.Name))
	})
}
