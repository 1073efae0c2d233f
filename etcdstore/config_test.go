package etcdstore

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"rebootbot/etcdstore/etcdtest"
)

const secret = "s3cr3t-Pa55w0rd"

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfigFromEnv(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := writeTLSFiles(t, dir)
	tests := []struct {
		name string
		env  map[string]string
		want Config
		ok   bool
	}{
		{"Unset", map[string]string{"BOT_ETCD_PASSWORD": secret}, Config{}, false},
		{"Blank", map[string]string{"BOT_ETCD_ENDPOINTS": "  "}, Config{}, false},
		{"Defaults", map[string]string{"BOT_ETCD_ENDPOINTS": "http://10.0.0.1:2379"},
			Config{Endpoints: []string{"http://10.0.0.1:2379"}, Prefix: "/rebootbot/", LeaseTTL: 10 * time.Second}, true},
		{"Everything", map[string]string{
			"BOT_ETCD_ENDPOINTS": "https://etcd-0:2379, https://etcd-1:2379/,https://[::1]:2379",
			"BOT_ETCD_PREFIX":    "/teams/sre",
			"BOT_ETCD_CA":        ca, "BOT_ETCD_CERT": cert, "BOT_ETCD_KEY": key,
			"BOT_ETCD_USERNAME": "rebootbot", "BOT_ETCD_PASSWORD": secret,
			"BOT_ETCD_LEASE_TTL": "15s",
		}, Config{
			Endpoints: []string{"https://etcd-0:2379", "https://etcd-1:2379", "https://[::1]:2379"},
			Prefix:    "/teams/sre/", CAFile: ca, CertFile: cert, KeyFile: key,
			Username: "rebootbot", Password: secret, LeaseTTL: 15 * time.Second,
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := ConfigFromEnv(env(tt.env))
			if err != nil || ok != tt.ok || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ConfigFromEnv = %#v, %v, %v; want %#v, %v", got, ok, err, tt.want, tt.ok)
			}
		})
	}
}

func TestConfigFromEnvErrors(t *testing.T) {
	base := func(kv ...string) map[string]string {
		m := map[string]string{"BOT_ETCD_ENDPOINTS": "http://127.0.0.1:2379", "BOT_ETCD_PASSWORD": secret, "BOT_ETCD_USERNAME": "bot"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name    string
		env     map[string]string
		varName string
	}{
		{"EmptyEntry", base("BOT_ETCD_ENDPOINTS", "http://a:2379,,http://b:2379"), "BOT_ETCD_ENDPOINTS"},
		{"NoScheme", base("BOT_ETCD_ENDPOINTS", "10.0.0.1:2379"), "BOT_ETCD_ENDPOINTS"},
		{"OtherScheme", base("BOT_ETCD_ENDPOINTS", "unix:///run/etcd.sock"), "BOT_ETCD_ENDPOINTS"},
		{"NoPort", base("BOT_ETCD_ENDPOINTS", "http://etcd"), "BOT_ETCD_ENDPOINTS"},
		{"Path", base("BOT_ETCD_ENDPOINTS", "http://etcd:2379/v3"), "BOT_ETCD_ENDPOINTS"},
		{"CredentialsInURL", base("BOT_ETCD_ENDPOINTS", "http://bot:"+secret+"@etcd:2379"), "BOT_ETCD_ENDPOINTS"},
		{"BadURLWithCredentials", base("BOT_ETCD_ENDPOINTS", "http://bot:"+secret+"@etcd:23 79"), "BOT_ETCD_ENDPOINTS"},
		{"PlainHTTPWithTLS", base("BOT_ETCD_CA", "/etc/ca.pem"), "BOT_ETCD_ENDPOINTS"},
		{"CertWithoutKey", base("BOT_ETCD_ENDPOINTS", "https://etcd:2379", "BOT_ETCD_CERT", "/c.pem"), "BOT_ETCD_KEY"},
		{"KeyWithoutCert", base("BOT_ETCD_ENDPOINTS", "https://etcd:2379", "BOT_ETCD_KEY", "/k.pem"), "BOT_ETCD_CERT"},
		{"PrefixRelative", base("BOT_ETCD_PREFIX", "rebootbot"), "BOT_ETCD_PREFIX"},
		{"PrefixSpace", base("BOT_ETCD_PREFIX", "/reboot bot/"), "BOT_ETCD_PREFIX"},
		{"UserWithoutPassword", base("BOT_ETCD_PASSWORD", ""), "BOT_ETCD_PASSWORD"},
		{"PasswordWithoutUser", base("BOT_ETCD_USERNAME", ""), "BOT_ETCD_USERNAME"},
		{"UserWithColon", base("BOT_ETCD_USERNAME", "bot:x"), "BOT_ETCD_USERNAME"},
		{"TTLNotDuration", base("BOT_ETCD_LEASE_TTL", "10"), "BOT_ETCD_LEASE_TTL"},
		{"TTLTooShort", base("BOT_ETCD_LEASE_TTL", "500ms"), "BOT_ETCD_LEASE_TTL"},
		{"TTLTooLong", base("BOT_ETCD_LEASE_TTL", "2h"), "BOT_ETCD_LEASE_TTL"},
		{"TTLFraction", base("BOT_ETCD_LEASE_TTL", "2500ms"), "BOT_ETCD_LEASE_TTL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ConfigFromEnv(env(tt.env))
			if err == nil {
				t.Fatal("ConfigFromEnv accepted it")
			}
			if !strings.HasPrefix(err.Error(), tt.varName+":") {
				t.Errorf("error %q does not start with %s", err, tt.varName)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q holds the password", err)
			}
		})
	}
}

func TestConfigKeepsPasswordOutOfText(t *testing.T) {
	cfg, _, err := ConfigFromEnv(env(map[string]string{"BOT_ETCD_ENDPOINTS": "http://127.0.0.1:2379", "BOT_ETCD_USERNAME": "bot", "BOT_ETCD_PASSWORD": secret}))
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(verb, cfg); strings.Contains(s, secret) {
			t.Errorf("%s shows the password: %s", verb, s)
		}
	}
}

func TestClientConfigTLSFiles(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := writeTLSFiles(t, dir)
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name           string
		ca, cert, key  string
		wantErrPrefix  string
		wantRoots, tls bool
	}{
		{"All", ca, cert, key, "", true, true},
		{"SystemRoots", "", "", "", "", false, true},
		{"MissingCA", missing, "", "", "BOT_ETCD_CA:", false, false},
		{"GarbageCA", garbage, "", "", "BOT_ETCD_CA:", false, false},
		{"MissingCert", ca, missing, key, "BOT_ETCD_CERT:", false, false},
		{"MissingKey", ca, cert, missing, "BOT_ETCD_KEY:", false, false},
		{"KeyNotMatching", ca, cert, ca, "BOT_ETCD_CERT, BOT_ETCD_KEY:", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Endpoints: []string{"https://127.0.0.1:2379"}, CAFile: tt.ca, CertFile: tt.cert, KeyFile: tt.key}
			cc, err := c.ClientConfig()
			if tt.wantErrPrefix != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErrPrefix) {
					t.Errorf("ClientConfig error %v, want one starting %q", err, tt.wantErrPrefix)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cc.TLS == nil || (cc.TLS.RootCAs != nil) != tt.wantRoots {
				t.Errorf("TLS %+v; want TLS with own roots %v", cc.TLS, tt.wantRoots)
			}
		})
	}
	plain, err := Config{Endpoints: []string{"http://127.0.0.1:2379"}}.ClientConfig()
	if err != nil || plain.TLS != nil {
		t.Errorf("plain http: TLS %v, err %v; want none", plain.TLS, err)
	}
}

// TestOpen connects through a Config as the bot does, and fails with the
// store unreachable in a bounded time.
func TestOpen(t *testing.T) {
	m := etcdtest.Start(t)
	cfg, _, err := ConfigFromEnv(env(map[string]string{"BOT_ETCD_ENDPOINTS": m.Endpoint, "BOT_ETCD_PREFIX": "/open-test"}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Prefix() != "/open-test/" {
		t.Errorf("prefix %q", s.Prefix())
	}
	if err := s.Check(ctx); err != nil {
		t.Errorf("Check: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}

	// Nobody listens on this port.
	dead := Config{Endpoints: []string{"http://" + etcdtest.FreeAddr(t)}, Prefix: DefaultPrefix}
	short, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	start := time.Now()
	if _, err := Open(short, dead, Options{}); err == nil {
		t.Error("Open succeeded without a cluster")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Open took %v to fail", d)
	}
}

// TestNewRefusesOtherLayout checks a prefix written by another layout is
// not touched.
func TestNewRefusesOtherLayout(t *testing.T) {
	m := etcdtest.Start(t)
	c := m.Client(t)
	if _, err := c.Put(context.Background(), "/other/meta/version", "99"); err != nil {
		t.Fatal(err)
	}
	_, err := New(context.Background(), c, Options{Prefix: "/other/"})
	if err == nil || !strings.Contains(err.Error(), `"99"`) {
		t.Errorf("New = %v, want the layout version refused", err)
	}
}

// writeTLSFiles writes a CA and a client certificate and key signed by it.
func writeTLSFiles(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	clientKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	clientTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "rebootbot"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	clientDER, err := x509.CreateCertificate(rand.Reader, clientTmpl, caTmpl, &clientKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(clientKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("client.pem", "CERTIFICATE", clientDER), write("client-key.pem", "EC PRIVATE KEY", keyDER)
}
