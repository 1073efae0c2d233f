package cloud

import (
	"strings"
	"testing"
	"time"

	"rebootbot/approval"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigFromEnv(t *testing.T) {
	const secret = "s3cr3t-key-value"
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string // substring; "" = no error
		check   func(t *testing.T, c Config)
	}{
		{name: "Empty", env: nil, check: func(t *testing.T, c Config) {
			if c.SecretID != "" || c.Endpoint != "" || c.DefaultRegion != "" {
				t.Errorf("got %+v, want zero credentials, endpoint and region", c)
			}
		}},
		{name: "Full", env: map[string]string{
			EnvSecretID: "AKIDexample", EnvSecretKey: secret, EnvSessionToken: "tok",
			EnvEndpoint: "http://127.0.0.1:9000", EnvRegion: "ap-shanghai",
		}, check: func(t *testing.T, c Config) {
			if c.SecretID != "AKIDexample" || c.SecretKey != secret || c.SessionToken != "tok" ||
				c.Endpoint != "http://127.0.0.1:9000" || c.DefaultRegion != "ap-shanghai" {
				t.Errorf("got %+v", c)
			}
		}},
		{name: "KeyWithoutID", env: map[string]string{EnvSecretKey: secret}, wantErr: EnvSecretKey + " is set but " + EnvSecretID},
		{name: "IDWithoutKey", env: map[string]string{EnvSecretID: "AKID"}, wantErr: EnvSecretKey},
		{name: "TokenAlone", env: map[string]string{EnvSessionToken: secret}, wantErr: EnvSessionToken},
		{name: "EndpointNoScheme", env: map[string]string{EnvEndpoint: "127.0.0.1:9000"}, wantErr: EnvEndpoint},
		{name: "EndpointBareHost", env: map[string]string{EnvEndpoint: "cvm.tencentcloudapi.com"}, wantErr: "scheme must be http or https"},
		{name: "EndpointFTP", env: map[string]string{EnvEndpoint: "ftp://host"}, wantErr: "scheme"},
		{name: "EndpointNoHost", env: map[string]string{EnvEndpoint: "http://"}, wantErr: "no host"},
		{name: "EndpointPath", env: map[string]string{EnvEndpoint: "https://host/api"}, wantErr: "path"},
		{name: "EndpointUser", env: map[string]string{EnvEndpoint: "https://me:" + secret + "@host"}, wantErr: "user information"},
		{name: "EndpointBadPort", env: map[string]string{EnvEndpoint: "http://host:abc"}, wantErr: EnvEndpoint},
		{name: "EndpointSlash", env: map[string]string{EnvEndpoint: "https://cvm.intl.tencentcloudapi.com/"}},
		{name: "BadRegion", env: map[string]string{EnvRegion: "AP_GUANGZHOU"}, wantErr: EnvRegion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ConfigFromEnv(envOf(tt.env))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ConfigFromEnv: %v", err)
				}
				if tt.check != nil {
					tt.check(t, got)
				}
				return
			}
			if err == nil {
				t.Fatalf("ConfigFromEnv succeeded, want an error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q leaks the secret", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is not one line", err)
			}
		})
	}
}

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		raw, wantScheme, wantHost string
	}{
		{"", "", ""},
		{"http://127.0.0.1:9000", "HTTP", "127.0.0.1:9000"},
		{"https://cvm.intl.tencentcloudapi.com", "HTTPS", "cvm.intl.tencentcloudapi.com"},
		{"http://[::1]:9000/", "HTTP", "[::1]:9000"},
	}
	for _, tt := range tests {
		scheme, host, err := parseEndpoint(tt.raw)
		if err != nil {
			t.Errorf("parseEndpoint(%q): %v", tt.raw, err)
			continue
		}
		if scheme != tt.wantScheme || host != tt.wantHost {
			t.Errorf("parseEndpoint(%q) = %q, %q; want %q, %q", tt.raw, scheme, host, tt.wantScheme, tt.wantHost)
		}
	}
}

func TestNewDefaultsAndValidation(t *testing.T) {
	c, err := New(Config{SecretID: "AKID", SecretKey: "k"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	got := c.cfg
	if got.DefaultRegion != approval.DefaultRegion || got.MaxAttempts != DefaultMaxAttempts || got.BaseDelay != DefaultBaseDelay ||
		got.MaxDelay != DefaultMaxDelay || got.RequestTimeout != DefaultRequestTimeout {
		t.Errorf("defaults = %+v", got)
	}
	if got.Limiter != SharedLimiter() || got.DescribeLimiter != SharedDescribeLimiter() {
		t.Error("a Config without limiters does not use the process-wide ones")
	}

	bad := []Config{
		{MaxAttempts: -1},
		{BaseDelay: -time.Second},
		{RequestTimeout: -1},
		{DefaultRegion: "Guangzhou"},
		{Endpoint: "nope"},
		{SecretID: "AKID"},
	}
	for _, cfg := range bad {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded, want an error", cfg)
		}
	}
}

func TestBackoff(t *testing.T) {
	c, err := New(Config{SecretID: "AKID", SecretKey: "k", BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c.jitter = func(d time.Duration) time.Duration { return d }
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for n, w := range want {
		if got := c.backoff(n); got != w*time.Millisecond {
			t.Errorf("backoff(%d) = %v, want %v", n, got, w*time.Millisecond)
		}
	}
	if got := c.backoff(200); got != time.Second {
		t.Errorf("backoff(200) = %v, want the cap", got)
	}
	for range 1000 {
		if d := fullJitter(50 * time.Millisecond); d < 0 || d > 50*time.Millisecond {
			t.Fatalf("fullJitter = %v, outside [0, 50ms]", d)
		}
	}
}
