package etcdstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Config is how to reach the etcd cluster, as the BOT_ETCD_* variables
// give it.
type Config struct {
	Endpoints []string // client URLs
	Prefix    string   // every key under it; ends in /
	CAFile    string   // PEM certificates to trust; unset: the system's
	CertFile  string   // client certificate (PEM), with KeyFile
	KeyFile   string
	Username  string
	Password  string
	LeaseTTL  time.Duration // the leader's lease
}

// String describes c for logs, without the password.
func (c Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "etcd %s prefix %s lease %s", strings.Join(c.Endpoints, ","), c.Prefix, c.LeaseTTL)
	if c.CAFile != "" || c.CertFile != "" {
		b.WriteString(" tls")
	}
	if c.Username != "" {
		fmt.Fprintf(&b, " user %s", c.Username)
	}
	return b.String()
}

// GoString keeps the password out of %#v too.
func (c Config) GoString() string { return "etcdstore.Config{" + c.String() + "}" }

// ConfigFromEnv reads the BOT_ETCD_* variables through getenv. ok is false
// when BOT_ETCD_ENDPOINTS is unset or blank: the bot then keeps its state
// in bbolt and the other variables are not read. An error names the
// variable at fault and never holds the password.
func ConfigFromEnv(getenv func(string) string) (cfg Config, ok bool, err error) {
	raw := strings.TrimSpace(getenv("BOT_ETCD_ENDPOINTS"))
	if raw == "" {
		return Config{}, false, nil
	}
	cfg.CAFile = strings.TrimSpace(getenv("BOT_ETCD_CA"))
	cfg.CertFile = strings.TrimSpace(getenv("BOT_ETCD_CERT"))
	cfg.KeyFile = strings.TrimSpace(getenv("BOT_ETCD_KEY"))
	switch {
	case cfg.CertFile != "" && cfg.KeyFile == "":
		return Config{}, false, errors.New("BOT_ETCD_KEY: required when BOT_ETCD_CERT is set")
	case cfg.KeyFile != "" && cfg.CertFile == "":
		return Config{}, false, errors.New("BOT_ETCD_CERT: required when BOT_ETCD_KEY is set")
	}
	tlsSet := cfg.CAFile != "" || cfg.CertFile != ""
	for _, e := range strings.Split(raw, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			return Config{}, false, fmt.Errorf("BOT_ETCD_ENDPOINTS: empty entry in %q", raw)
		}
		u, err := url.Parse(e)
		if err != nil {
			return Config{}, false, fmt.Errorf("BOT_ETCD_ENDPOINTS: %q is not a URL", redactURL(e))
		}
		switch {
		case u.User != nil:
			return Config{}, false, fmt.Errorf("BOT_ETCD_ENDPOINTS: %s carries credentials; use BOT_ETCD_USERNAME and BOT_ETCD_PASSWORD", u.Redacted())
		case u.Scheme != "http" && u.Scheme != "https":
			return Config{}, false, fmt.Errorf("BOT_ETCD_ENDPOINTS: %q is not an http:// or https:// URL", e)
		case u.Hostname() == "" || u.Port() == "":
			return Config{}, false, fmt.Errorf("BOT_ETCD_ENDPOINTS: %q needs a host and a port (etcd's client port is 2379 by default)", e)
		case strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "":
			return Config{}, false, fmt.Errorf("BOT_ETCD_ENDPOINTS: %q has a path or query; etcd endpoints are scheme://host:port", e)
		case tlsSet && u.Scheme != "https":
			return Config{}, false, fmt.Errorf("BOT_ETCD_ENDPOINTS: %q is plain http but TLS files are set (BOT_ETCD_CA, BOT_ETCD_CERT); use https://", e)
		}
		cfg.Endpoints = append(cfg.Endpoints, u.Scheme+"://"+u.Host)
	}

	cfg.Prefix = DefaultPrefix
	if p := getenv("BOT_ETCD_PREFIX"); p != "" {
		if !strings.HasPrefix(p, "/") || strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return Config{}, false, fmt.Errorf("BOT_ETCD_PREFIX: %q must start with / and hold no spaces or control characters", p)
		}
		if !strings.HasSuffix(p, "/") {
			p += "/"
		}
		cfg.Prefix = p
	}

	cfg.Username = getenv("BOT_ETCD_USERNAME")
	cfg.Password = getenv("BOT_ETCD_PASSWORD")
	switch {
	case cfg.Username != "" && cfg.Password == "":
		return Config{}, false, errors.New("BOT_ETCD_PASSWORD: required when BOT_ETCD_USERNAME is set")
	case cfg.Password != "" && cfg.Username == "":
		return Config{}, false, errors.New("BOT_ETCD_USERNAME: required when BOT_ETCD_PASSWORD is set")
	case strings.ContainsAny(cfg.Username, ": \t\r\n"):
		return Config{}, false, errors.New("BOT_ETCD_USERNAME: must not hold a colon or spaces")
	}

	cfg.LeaseTTL = DefaultLeaseTTL
	if s := strings.TrimSpace(getenv("BOT_ETCD_LEASE_TTL")); s != "" {
		d, err := time.ParseDuration(s)
		switch {
		case err != nil:
			return Config{}, false, fmt.Errorf("BOT_ETCD_LEASE_TTL: %q is not a duration such as 10s", s)
		case d < time.Second || d > time.Hour:
			return Config{}, false, fmt.Errorf("BOT_ETCD_LEASE_TTL: %s is out of range (1s to 1h)", d)
		case d%time.Second != 0:
			return Config{}, false, fmt.Errorf("BOT_ETCD_LEASE_TTL: %s is not a whole number of seconds, which is what etcd leases count in", d)
		}
		cfg.LeaseTTL = d
	}
	return cfg, true, nil
}

// redactURL hides what looks like a password in a string that did not
// parse as a URL.
func redactURL(s string) string {
	if at := strings.LastIndex(s, "@"); at >= 0 {
		return "…" + s[at:]
	}
	return s
}

// ClientConfig returns the etcd client's configuration, reading the TLS
// files. An error names the variable of the file at fault.
func (c Config) ClientConfig() (clientv3.Config, error) {
	cc := clientv3.Config{
		Endpoints:            c.Endpoints,
		Username:             c.Username,
		Password:             c.Password,
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		// The client's own log lines repeat what its errors say.
		Logger: zap.NewNop(),
	}
	https := slices.ContainsFunc(c.Endpoints, func(e string) bool { return strings.HasPrefix(e, "https://") })
	if c.CAFile == "" && c.CertFile == "" && !https {
		return cc, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return cc, fmt.Errorf("BOT_ETCD_CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return cc, fmt.Errorf("BOT_ETCD_CA: no PEM certificate in %s", c.CAFile)
		}
		t.RootCAs = pool
	}
	if c.CertFile != "" {
		if _, err := os.Stat(c.CertFile); err != nil {
			return cc, fmt.Errorf("BOT_ETCD_CERT: %w", err)
		}
		if _, err := os.Stat(c.KeyFile); err != nil {
			return cc, fmt.Errorf("BOT_ETCD_KEY: %w", err)
		}
		pair, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return cc, fmt.Errorf("BOT_ETCD_CERT, BOT_ETCD_KEY: %w", err)
		}
		t.Certificates = []tls.Certificate{pair}
	}
	cc.TLS = t
	return cc, nil
}

// Open connects to the cluster c names and returns a Store over it; the
// Store's Close closes the connection. It fails when the cluster cannot
// be reached before ctx ends.
func Open(ctx context.Context, c Config, opts Options) (*Store, error) {
	cc, err := c.ClientConfig()
	if err != nil {
		return nil, err
	}
	client, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: connect to %s: %w", strings.Join(c.Endpoints, ","), err)
	}
	if opts.Prefix == "" {
		opts.Prefix = c.Prefix
	}
	s, err := New(ctx, client, opts)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("etcdstore: open %s: %w", strings.Join(c.Endpoints, ","), err)
	}
	s.owned = true
	return s, nil
}
