package smb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"

	"github.com/ofmprobe/ofmprobe/probe/engine"
)

// defaultMaxAuthFailures is how many logon failures stop the use of credentials when no limit is given: below the
// lockout threshold of most domain policies (often 5 or 10).
const defaultMaxAuthFailures = 3

// Logon outcomes that count against credentials (MS-ERREF §2.3).
const (
	statusLogonFailure     = 0xC000006D // STATUS_LOGON_FAILURE: wrong user name or password
	statusAccountLockedOut = 0xC0000234 // STATUS_ACCOUNT_LOCKED_OUT
)

// errCredentialsDisabled means the credentials reached their logon failure limit.
var errCredentialsDisabled = errors.New("credentials disabled")

// Credentials are the user name, domain and password the share check logs on with. They stop being used after
// maxFailures logon failures across the whole scan, so that a mistyped password does not lock a domain account out.
//
// The password is kept out of every printed form: String, GoString, Format (every verb, also %+v and %#v), the JSON
// encoding and slog show only `DOMAIN\user`. Even printing the struct by value through reflection shows a function
// address, not the password.
//
// How overshooting the limit is bounded: until the password has been proven right (a logon that the server did not
// map to guest), at most maxFailures-failures logons are in flight, and a check that finds no slot waits for one.
// Failures therefore never exceed maxFailures before that proof. After it, checks run at full concurrency and a
// failure can only come from another account of the same name (a local account, a changed password); the failures
// then exceed maxFailures by at most the number of logons in flight when the limit was reached, which the scan's
// socket budget bounds. A locked-out answer stops the credentials at once.
type Credentials struct {
	User, Domain string
	// password returns the password; a function, so that no reflection-based printer can show it.
	password    func() string
	maxFailures int

	mu        sync.Mutex
	failures  int
	inFlight  int
	verified  bool
	lockedOut bool
	// changed is closed, and replaced, whenever a logon ends: checks waiting for a slot look again.
	changed chan struct{}
}

// NewCredentials returns credentials that stop being used after maxAuthFailures logon failures; zero or less means
// 3.
func NewCredentials(user, domain, password string, maxAuthFailures int) *Credentials {
	if maxAuthFailures <= 0 {
		maxAuthFailures = defaultMaxAuthFailures
	}
	return &Credentials{
		User:        user,
		Domain:      domain,
		password:    func() string { return password },
		maxFailures: maxAuthFailures,
		changed:     make(chan struct{}),
	}
}

// String returns the login the credentials stand for, `DOMAIN\user` or `user`, or "guest" for nil credentials or an
// empty user. It never includes the password.
func (c *Credentials) String() string {
	switch {
	case c == nil || c.User == "":
		return "guest"
	case c.Domain == "":
		return c.User
	}
	return c.Domain + `\` + c.User
}

// GoString returns the same as String, so that %#v never shows the password.
func (c *Credentials) GoString() string { return strconv.Quote(c.String()) }

// Format prints String for every verb; %q and %#v quote it.
func (c *Credentials) Format(f fmt.State, verb rune) {
	if verb == 'q' || (verb == 'v' && f.Flag('#')) {
		fmt.Fprint(f, strconv.Quote(c.String()))
		return
	}
	fmt.Fprint(f, c.String())
}

// LogValue logs the credentials as String.
func (c *Credentials) LogValue() slog.Value { return slog.StringValue(c.String()) }

// MarshalJSON encodes the user and domain, never the password.
func (c *Credentials) MarshalJSON() ([]byte, error) {
	if c == nil {
		return []byte("null"), nil
	}
	return json.Marshal(struct {
		User   string `json:"user"`
		Domain string `json:"domain,omitempty"`
	}{c.User, c.Domain})
}

// Failures returns how many logon failures the credentials met.
func (c *Credentials) Failures() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failures
}

// Disabled reports whether the credentials reached their logon failure limit, or an account was locked out.
func (c *Credentials) Disabled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.disabledLocked()
}

func (c *Credentials) disabledLocked() bool { return c.lockedOut || c.failures >= c.maxFailures }

// disabledNote says, for a result, why the credentials were not used.
func (c *Credentials) disabledNote() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lockedOut {
		return fmt.Sprintf("credentials not used: a server answered that the account %s is locked out", c)
	}
	return fmt.Sprintf("credentials not used: %d logon %s already, stopped to avoid locking the account out",
		c.failures, engine.Plural(c.failures, "failure"))
}

// logonAttempt is one use of credentials; end must be called exactly once.
type logonAttempt struct {
	c    *Credentials
	once sync.Once
}

// logonOutcome is what a logon attempt proved about the credentials.
type logonOutcome int

const (
	// logonUnknown: no logon answer (a connect failure, a timeout, a protocol error) or one that says nothing about
	// the password.
	logonUnknown logonOutcome = iota
	// logonAccepted: the server accepted the user and password (not as guest).
	logonAccepted
	// logonFailed: the server answered STATUS_LOGON_FAILURE.
	logonFailed
	// logonLockedOut: the server answered STATUS_ACCOUNT_LOCKED_OUT.
	logonLockedOut
)

// begin reserves a logon. Before the password is proven right it waits, within ctx, until failures plus logons in
// flight are below the limit. It returns errCredentialsDisabled once the limit is reached, or ctx's error.
func (c *Credentials) begin(ctx context.Context) (*logonAttempt, error) {
	for {
		c.mu.Lock()
		if c.disabledLocked() {
			c.mu.Unlock()
			return nil, errCredentialsDisabled
		}
		if c.verified || c.failures+c.inFlight < c.maxFailures {
			c.inFlight++
			c.mu.Unlock()
			return &logonAttempt{c: c}, nil
		}
		wait := c.changed
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// end records the outcome of the attempt and frees its slot.
func (a *logonAttempt) end(outcome logonOutcome) {
	a.once.Do(func() {
		c := a.c
		c.mu.Lock()
		defer c.mu.Unlock()
		c.inFlight--
		switch outcome {
		case logonAccepted:
			c.verified = true
		case logonFailed:
			c.failures++
		case logonLockedOut:
			c.failures++
			c.lockedOut = true
		}
		close(c.changed)
		c.changed = make(chan struct{})
	})
}

// secret returns the password for a logon.
func (c *Credentials) secret() string { return c.password() }
