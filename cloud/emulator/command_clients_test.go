package emulator_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	cvm "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/cvm/v20170312"

	"rebootbot/cloud/emulator"
	"rebootbot/internal/testutil"
)

var certificateRE = regexp.MustCompile(`TLS certificate \(trust it as a CA\): (\S+)`)

// certificateOf returns the path of the certificate Command printed and
// the certificate, checked to be one the emulator's clients can trust.
func certificateOf(t *testing.T, stdout string) (string, *x509.Certificate, *x509.CertPool) {
	t.Helper()
	m := certificateRE.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("stdout names no certificate:\n%s", stdout)
	}
	data, err := os.ReadFile(m[1])
	if err != nil {
		t.Fatalf("reading the printed certificate: %v", err)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" || len(strings.TrimSpace(string(rest))) != 0 {
		t.Fatalf("%s is not one PEM certificate:\n%s", m[1], data)
	}
	if strings.Contains(string(data), "PRIVATE KEY") {
		t.Fatalf("%s holds a private key", m[1])
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return m[1], cert, pool
}

// trusting returns a transport that trusts only pool's certificates.
func trusting(pool *x509.CertPool) *http.Transport {
	return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
}

func TestCommandServesTLS(t *testing.T) {
	t.Setenv("TENCENTCLOUD_SECRET_ID", "")
	t.Setenv("TENCENTCLOUD_SECRET_KEY", "")
	certFile := filepath.Join(t.TempDir(), "emulator.pem")
	endpoint, stdout, _, stop := runCommand(t, "--listen", "127.0.0.1:0", "--instances", "2", "--tls", "--tls-cert", certFile)

	if !strings.HasPrefix(endpoint, "https://127.0.0.1:") {
		t.Fatalf("endpoint = %s, want https://127.0.0.1:port", endpoint)
	}
	path, cert, pool := certificateOf(t, stdout.String())
	if path != certFile {
		t.Errorf("certificate written to %s, want %s", path, certFile)
	}
	if _, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("certificate key is %T, want ECDSA", cert.PublicKey)
	}
	if !slices.Contains(cert.DNSNames, "localhost") ||
		!slices.ContainsFunc(cert.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) }) ||
		!slices.ContainsFunc(cert.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.IPv6loopback) }) {
		t.Errorf("certificate names %v %v, want localhost, 127.0.0.1 and ::1", cert.DNSNames, cert.IPAddresses)
	}

	port := endpoint[strings.LastIndexByte(endpoint, ':')+1:]
	cred := common.NewCredential(emulator.DemoSecretID, emulator.DemoSecretKey)
	for _, sm := range signMethods {
		for _, host := range []string{"127.0.0.1", "localhost"} {
			t.Run(sm+"/"+host, func(t *testing.T) {
				c := sdkClient(t, "https://"+host+":"+port, cred, sm, "POST")
				c.WithHttpTransport(trusting(pool))
				resp, err := c.DescribeInstances(cvm.NewDescribeInstancesRequest())
				if err != nil {
					t.Fatalf("DescribeInstances over HTTPS: %v", err)
				}
				if got, want := *resp.Response.TotalCount, int64(2); got != want {
					t.Errorf("TotalCount = %d, want %d", got, want)
				}
			})
		}
	}

	t.Run("UntrustedCertificate", func(t *testing.T) {
		c := sdkClient(t, endpoint, cred, "TC3-HMAC-SHA256", "POST")
		c.WithHttpTransport(trusting(x509.NewCertPool()))
		_, err := c.DescribeInstances(cvm.NewDescribeInstancesRequest())
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Errorf("err = %v, want an unknown-authority error", err)
		}
	})
	t.Run("PlainHTTP", func(t *testing.T) {
		c := sdkClient(t, "http"+strings.TrimPrefix(endpoint, "https"), cred, "TC3-HMAC-SHA256", "POST")
		if _, err := c.DescribeInstances(cvm.NewDescribeInstancesRequest()); err == nil {
			t.Error("a plain HTTP request was answered")
		}
	})

	if err := stop(); err != nil {
		t.Errorf("Command returned %v", err)
	}
	if _, err := os.Stat(certFile); err != nil {
		t.Errorf("the certificate named with --tls-cert is gone after exit: %v", err)
	}
}

func TestCommandTLSCertificateInTempDirRemovedOnExit(t *testing.T) {
	t.Setenv("TENCENTCLOUD_SECRET_ID", "")
	t.Setenv("TENCENTCLOUD_SECRET_KEY", "")
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	endpoint, stdout, _, stop := runCommand(t, "--listen", "127.0.0.1:0", "--instances", "1", "--tls")
	path, _, pool := certificateOf(t, stdout.String())
	if filepath.Dir(path) != tmp {
		t.Errorf("certificate written to %s, want a file in the temporary directory %s", path, tmp)
	}
	c := sdkClient(t, endpoint, common.NewCredential(emulator.DemoSecretID, emulator.DemoSecretKey), "HmacSHA256", "POST")
	c.WithHttpTransport(trusting(pool))
	if _, err := c.DescribeInstances(cvm.NewDescribeInstancesRequest()); err != nil {
		t.Fatalf("DescribeInstances over HTTPS: %v", err)
	}
	if err := stop(); err != nil {
		t.Errorf("Command returned %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the generated certificate %s is still there after exit (%v)", path, err)
	}
}

func TestCommandSessionToken(t *testing.T) {
	t.Setenv("TENCENTCLOUD_SECRET_ID", "")
	t.Setenv("TENCENTCLOUD_SECRET_KEY", "")
	const token = "cmd-session-token-0001"
	endpoint, stdout, stderr, stop := runCommand(t, "--listen", "127.0.0.1:0", "--instances", "1", "--session-token", token)
	if out := stdout.String(); !strings.Contains(out, "session token is required") || strings.Contains(out, token) {
		t.Errorf("stdout should say a token is required without showing it:\n%s", out)
	}
	for _, sm := range signMethods {
		t.Run(sm, func(t *testing.T) {
			with := sdkClient(t, endpoint, common.NewTokenCredential(emulator.DemoSecretID, emulator.DemoSecretKey, token), sm, "POST")
			if _, err := with.DescribeInstances(cvm.NewDescribeInstancesRequest()); err != nil {
				t.Errorf("with the token: %v", err)
			}
			without := sdkClient(t, endpoint, common.NewCredential(emulator.DemoSecretID, emulator.DemoSecretKey), sm, "POST")
			_, err := without.DescribeInstances(cvm.NewDescribeInstancesRequest())
			if got, want := codeOf(t, err), "AuthFailure.TokenFailure"; got != want {
				t.Errorf("without the token: code = %q, want %q", got, want)
			}
		})
	}
	if err := stop(); err != nil {
		t.Errorf("Command returned %v", err)
	}
	if strings.Contains(stderr.String(), token) {
		t.Errorf("the log shows the token:\n%s", stderr.String())
	}
}

func TestCommandTLSBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"CertWithoutTLS", []string{"--tls-cert", filepath.Join(t.TempDir(), "c.pem")}, "--tls-cert needs --tls"},
		{"CertInMissingDirectory", []string{"--listen", "127.0.0.1:0", "--tls", "--tls-cert", filepath.Join(t.TempDir(), "missing", "c.pem")}, "writing the TLS certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr testutil.SyncBuffer
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // a bad flag must be reported without serving
			err := emulator.Command(ctx, tt.args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to mention %q", err, tt.want)
			}
			if strings.Contains(stdout.String(), "listening") {
				t.Errorf("Command listened despite the error:\n%s", stdout.String())
			}
		})
	}
}

func TestCommandHelpDescribesFlagsAndSeedFormat(t *testing.T) {
	var stdout, stderr testutil.SyncBuffer
	if err := emulator.Command(context.Background(), []string{"--help"}, &stdout, &stderr); err != nil {
		t.Fatalf("Command --help = %v, want nil", err)
	}
	help := stdout.String()
	flags := []string{"listen", "secret-id", "secret-key", "session-token", "tls", "tls-cert", "seed", "instances",
		"generate-seed", "region", "reboot-duration", "error-rate", "error-action", "error-code", "latency", "calls-per-second"}
	for _, f := range flags {
		if !regexp.MustCompile(`(?m)^  -` + regexp.QuoteMeta(f) + `\b`).MatchString(help) {
			t.Errorf("help does not describe --%s", f)
		}
	}
	for _, want := range []string{"HmacSHA256", "HmacSHA1", "TC3-HMAC-SHA256", "Seed file", `"instances"`,
		`"id"`, "name", "zone", "region", "state", "private_ips", "public_ips", "tags"} {
		if !strings.Contains(help, want) {
			t.Errorf("help does not mention %s", want)
		}
	}
	if strings.Contains(help, "LoadSeed") || strings.Contains(help, emulator.DemoSecretKey) {
		t.Errorf("help names a Go function or shows the demo key:\n%s", help)
	}

	// The example must be a seed file the emulator takes.
	_, example, ok := strings.Cut(help, "Example:\n")
	if !ok {
		t.Fatalf("help has no seed example:\n%s", help)
	}
	path := filepath.Join(t.TempDir(), "seed.json")
	if err := os.WriteFile(path, []byte(example), 0o600); err != nil {
		t.Fatal(err)
	}
	ins, err := emulator.LoadSeed(path)
	if err != nil {
		t.Fatalf("the help's example is not a valid seed file: %v\n%s", err, example)
	}
	if got, want := len(ins), 2; got != want {
		t.Errorf("the help's example seeds %d instances, want %d", got, want)
	}
}
