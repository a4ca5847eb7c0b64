package smb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const credSecret = "Pw-9f3!never-print-me"

func TestCredentialsNeverPrintThePassword(t *testing.T) {
	c := NewCredentials("ofmlab", "OFMLAB", credSecret, 0)
	type holder struct {
		Creds  *Credentials
		hidden *Credentials
	}
	h := holder{c, c}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("share check", "creds", c)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("share check", "creds", c)
	js, err := json.Marshal(c)
	must(t, err)
	jsh, err := json.Marshal(h)
	must(t, err)
	outputs := map[string]string{
		"String":                      c.String(),
		"%v":                          fmt.Sprintf("%v", c),
		"%+v":                         fmt.Sprintf("%+v", c),
		"%#v":                         fmt.Sprintf("%#v", c),
		"%s":                          fmt.Sprintf("%s", c),
		"%q":                          fmt.Sprintf("%q", c),
		"%x":                          fmt.Sprintf("%x", c),
		"%+v of a struct holding it":  fmt.Sprintf("%+v", h),
		"%#v of a struct holding it":  fmt.Sprintf("%#v", h),
		"json":                        string(js),
		"json of a struct holding it": string(jsh),
		"slog":                        logged.String(),
		"error wrapping":              fmt.Errorf("share mount: %v: %w", c, errors.New("x")).Error(),
	}
	for name, out := range outputs {
		if strings.Contains(out, credSecret) {
			t.Errorf("%s shows the password: %s", name, out)
		}
	}
	for name, want := range map[string]string{"String": `OFMLAB\ofmlab`, "%v": `OFMLAB\ofmlab`, "%#v": `"OFMLAB\\ofmlab"`, "%q": `"OFMLAB\\ofmlab"`,
		"json": `{"user":"ofmlab","domain":"OFMLAB"}`} {
		if outputs[name] != want {
			t.Errorf("%s = %s, want %s", name, outputs[name], want)
		}
	}
	var nilCreds *Credentials
	if nilCreds.String() != "guest" || NewCredentials("", "", "x", 1).String() != "guest" || NewCredentials("u", "", "x", 1).String() != "u" {
		t.Errorf("String of nil, empty user or no domain")
	}
	if js, _ := json.Marshal(nilCreds); string(js) != "null" {
		t.Errorf("json of nil = %s", js)
	}
	if c.secret() != credSecret {
		t.Error("secret does not return the password")
	}
}

func TestCredentialsDefaultLimit(t *testing.T) {
	c := NewCredentials("u", "", "p", 0)
	for i := range 3 {
		a, err := c.begin(context.Background())
		if err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		a.end(logonFailed)
		a.end(logonFailed) // a second end is ignored
	}
	if _, err := c.begin(context.Background()); !errors.Is(err, errCredentialsDisabled) || !c.Disabled() || c.Failures() != 3 {
		t.Errorf("after 3 failures: %v, disabled %v, %d failures", err, c.Disabled(), c.Failures())
	}
	if want := "credentials not used: 3 logon failures already, stopped to avoid locking the account out"; c.disabledNote() != want {
		t.Errorf("note %q", c.disabledNote())
	}
}

// TestCredentialsNoOvershootBeforeProof: before any logon succeeds, no more logons are in flight than failures
// are left, so a wrong password never makes more than the limit of failures, however many hosts run at once.
func TestCredentialsNoOvershootBeforeProof(t *testing.T) {
	c := NewCredentials("u", "", "p", 3)
	var inFlight, peak, started atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			a, err := c.begin(context.Background())
			if err != nil {
				return
			}
			started.Add(1)
			n := inFlight.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(5 * time.Millisecond)
			inFlight.Add(-1)
			a.end(logonFailed)
		})
	}
	wg.Wait()
	if started.Load() != 3 || c.Failures() != 3 || peak.Load() > 3 {
		t.Errorf("%d logons started, %d failures, %d at once; want 3, 3, at most 3", started.Load(), c.Failures(), peak.Load())
	}
}

// TestCredentialsOvershootAfterProof: once a logon succeeded, checks run at full concurrency, and the failures can
// exceed the limit by the checks in flight when it is reached, and no more.
func TestCredentialsOvershootAfterProof(t *testing.T) {
	c := NewCredentials("u", "", "p", 2)
	a, _ := c.begin(context.Background())
	a.end(logonAccepted)
	var attempts []*logonAttempt
	for range 10 {
		a, err := c.begin(context.Background())
		if err != nil {
			t.Fatalf("begin after proof: %v", err)
		}
		attempts = append(attempts, a)
	}
	for _, a := range attempts {
		a.end(logonFailed)
	}
	if c.Failures() != 10 || !c.Disabled() {
		t.Errorf("%d failures, disabled %v", c.Failures(), c.Disabled())
	}
	if _, err := c.begin(context.Background()); !errors.Is(err, errCredentialsDisabled) {
		t.Errorf("begin after the limit: %v", err)
	}
}

func TestCredentialsWaitForSlot(t *testing.T) {
	c := NewCredentials("u", "", "p", 1)
	first, _ := c.begin(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := c.begin(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("begin while the only slot is taken: %v", err)
	}
	got := make(chan error, 1)
	go func() {
		a, err := c.begin(context.Background())
		if a != nil {
			a.end(logonUnknown)
		}
		got <- err
	}()
	time.Sleep(20 * time.Millisecond)
	first.end(logonUnknown) // no verdict: the slot frees, the limit stays
	if err := <-got; err != nil {
		t.Errorf("waiting begin: %v", err)
	}
	if c.Failures() != 0 || c.Disabled() {
		t.Errorf("unknown outcomes counted")
	}
}

func TestCredentialsLockedOut(t *testing.T) {
	c := NewCredentials("u", "D", "p", 5)
	a, _ := c.begin(context.Background())
	a.end(logonLockedOut)
	if !c.Disabled() || c.disabledNote() != `credentials not used: a server answered that the account D\u is locked out` {
		t.Errorf("disabled %v, note %q", c.Disabled(), c.disabledNote())
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
