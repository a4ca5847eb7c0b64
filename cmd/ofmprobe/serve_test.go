package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// syncBuffer is a log sink the server and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// selfSigned writes a certificate for 127.0.0.1 and its key into dir and returns a pool that trusts it.
func selfSigned(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ofmprobe test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// TestServeTLSAndBasicAuth runs `serve` with a web configuration file that turns on TLS and basic auth: plain HTTP
// and requests without the right password are refused, the right one is served.
func TestServeTLSAndBasicAuth(t *testing.T) {
	dir := t.TempDir()
	pool := selfSigned(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("scrape-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	web := filepath.Join(dir, "web.yml")
	os.WriteFile(web, []byte("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\nbasic_auth_users:\n  prometheus: "+string(hash)+"\n"), 0o600)
	cfg := filepath.Join(dir, "serve.yml")
	os.WriteFile(cfg, []byte("allowed_targets: [127.0.0.0/29]\nmodules:\n  ofm-9.1: {profile: ofm-9.1, steps: [tcp], hops: 0}\n"), 0o600)

	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, serveOptions{config: cfg, webConfig: web, logLevel: "info", listen: []string{ln.Addr().String()}}, ln, &logs)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	base := "https://" + ln.Addr().String()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	do := func(user, pass, path string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		var resp *http.Response
		var err error
		for range 50 { // the listener is bound; the server may not be serving on it yet
			if resp, err = client.Do(req); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := do("", "", "/metrics"); code != http.StatusUnauthorized {
		t.Errorf("no credentials: %d, want 401", code)
	}
	if code, _ := do("prometheus", "wrong", "/metrics"); code != http.StatusUnauthorized {
		t.Errorf("wrong password: %d, want 401", code)
	}
	if code, body := do("prometheus", "scrape-pw", "/metrics"); code != http.StatusOK || !strings.Contains(body, "ofmprobe_build_info") {
		t.Errorf("right password: %d %.200s", code, body)
	}
	if code, body := do("prometheus", "scrape-pw", "/probe?module=ofm-9.1&target=127.0.0.2"); code != http.StatusOK || !strings.Contains(body, "probe_success 0") {
		t.Errorf("probe: %d %.200s", code, body)
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://" + ln.Addr().String() + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP was served")
		}
	}
	if strings.Contains(logs.String(), "scrape-pw") {
		t.Error("the log holds the scrape password")
	}
}

func TestServeBadInput(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "serve.yml")
	os.WriteFile(cfg, []byte("allowed_targets: [127.0.0.0/29]\nmodules:\n  ofm-9.1: {profile: ofm-9.1}\n"), 0o600)
	bad := filepath.Join(dir, "web.yml")
	os.WriteFile(bad, []byte("tls_server_config:\n  cert_file: missing.pem\n  key_file: missing.pem\n"), 0o600)
	for _, c := range []struct {
		opts serveOptions
		want string
	}{
		{serveOptions{config: filepath.Join(dir, "none.yml"), logLevel: "info"}, "config " + filepath.Join(dir, "none.yml") + ": no such file or directory"},
		{serveOptions{config: cfg, logLevel: "loud"}, `--log.level "loud": want debug, info, warn or error`},
		{serveOptions{config: cfg, logLevel: "info", webConfig: bad}, "--web.config.file " + bad + ":"},
	} {
		err := runServe(context.Background(), c.opts, nil, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("runServe(%+v) = %v; want one line with %q", c.opts, err, c.want)
		}
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != exitUsage {
			t.Errorf("runServe(%+v): want exit %d", c.opts, exitUsage)
		}
	}
}
