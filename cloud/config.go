package cloud

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"rebootbot/approval"
)

// Defaults used when a Config field is zero.
const (
	DefaultMaxAttempts    = 6
	DefaultBaseDelay      = 200 * time.Millisecond
	DefaultMaxDelay       = 5 * time.Second
	DefaultRequestTimeout = 30 * time.Second
	DefaultPollInterval   = 5 * time.Second
	DefaultWaitTimeout    = 10 * time.Minute
)

// Environment variables read by ConfigFromEnv.
const (
	EnvSecretID     = "TENCENTCLOUD_SECRET_ID"
	EnvSecretKey    = "TENCENTCLOUD_SECRET_KEY"
	EnvSessionToken = "TENCENTCLOUD_SESSION_TOKEN"
	EnvEndpoint     = "TENCENTCLOUD_ENDPOINT"
	EnvRegion       = "TENCENTCLOUD_REGION"
)

// Config configures a CVM adapter.
type Config struct {
	// SecretID, SecretKey and SessionToken are the API credentials. When all
	// are empty the SDK's default provider chain is used (environment,
	// profile file, CVM role).
	SecretID, SecretKey, SessionToken string
	// Endpoint is the CVM API endpoint as a URL; its scheme chooses HTTP or
	// HTTPS. Empty means the SDK's default, https://cvm.tencentcloudapi.com.
	Endpoint string
	// DefaultRegion is used when a call names no region; "" means
	// ap-guangzhou.
	DefaultRegion string
	// MaxAttempts bounds the attempts of one API call; 0 means 6.
	MaxAttempts int
	// BaseDelay and MaxDelay shape the backoff between attempts: the n-th
	// retry waits a random time up to min(MaxDelay, BaseDelay·2ⁿ). Zero
	// means 200ms and 5s.
	BaseDelay, MaxDelay time.Duration
	// Limiter paces RebootInstances calls; nil means the process-wide
	// limiter of 10 calls a second (SharedLimiter). Every adapter and
	// region of a process shares it, because Tencent's limit is per
	// account.
	Limiter *Limiter
	// DescribeLimiter paces DescribeInstances calls; nil means the
	// process-wide limiter of 40 calls a second (SharedDescribeLimiter).
	DescribeLimiter *Limiter
	// Logger receives retries and notable outcomes; nil discards them.
	Logger *slog.Logger
	// OnCall, when set, is called once per HTTP attempt with the action and
	// the error code ("" on success), for metrics.
	OnCall func(action, code string)
	// RequestTimeout bounds one HTTP attempt; 0 means 30s.
	RequestTimeout time.Duration
	// Clock paces backoff and Wait's polling; nil means the system clock.
	Clock approval.Clock
}

// ConfigFromEnv reads the TENCENTCLOUD_* variables. A bad value is reported
// in one line that names the variable and never repeats a secret.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	cfg := Config{
		SecretID:      strings.TrimSpace(getenv(EnvSecretID)),
		SecretKey:     strings.TrimSpace(getenv(EnvSecretKey)),
		SessionToken:  strings.TrimSpace(getenv(EnvSessionToken)),
		Endpoint:      strings.TrimSpace(getenv(EnvEndpoint)),
		DefaultRegion: strings.TrimSpace(getenv(EnvRegion)),
	}
	if err := cfg.checkCredentials(); err != nil {
		return Config{}, err
	}
	if _, _, err := parseEndpoint(cfg.Endpoint); err != nil {
		return Config{}, fmt.Errorf("%s: %w", EnvEndpoint, err)
	}
	if cfg.DefaultRegion != "" && !validRegion(cfg.DefaultRegion) {
		return Config{}, fmt.Errorf("%s: %q is not a region name such as ap-guangzhou", EnvRegion, printable(cfg.DefaultRegion))
	}
	return cfg, nil
}

// checkCredentials reports a half-set key pair.
func (c Config) checkCredentials() error {
	switch {
	case c.SecretID != "" && c.SecretKey == "":
		return fmt.Errorf("%s is set but %s is empty", EnvSecretID, EnvSecretKey)
	case c.SecretID == "" && c.SecretKey != "":
		return fmt.Errorf("%s is set but %s is empty", EnvSecretKey, EnvSecretID)
	case c.SecretID == "" && c.SessionToken != "":
		return fmt.Errorf("%s is set without %s and %s", EnvSessionToken, EnvSecretID, EnvSecretKey)
	}
	return nil
}

// withDefaults validates c and fills its zero fields.
func (c Config) withDefaults() (Config, error) {
	if err := c.checkCredentials(); err != nil {
		return c, err
	}
	switch {
	case c.MaxAttempts < 0:
		return c, errors.New("MaxAttempts must not be negative")
	case c.BaseDelay < 0 || c.MaxDelay < 0:
		return c, errors.New("BaseDelay and MaxDelay must not be negative")
	case c.RequestTimeout < 0:
		return c, errors.New("RequestTimeout must not be negative")
	}
	if c.DefaultRegion == "" {
		c.DefaultRegion = approval.DefaultRegion
	}
	if !validRegion(c.DefaultRegion) {
		return c, fmt.Errorf("default region %q is not a region name such as ap-guangzhou", printable(c.DefaultRegion))
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.BaseDelay == 0 {
		c.BaseDelay = DefaultBaseDelay
	}
	if c.MaxDelay == 0 {
		c.MaxDelay = DefaultMaxDelay
	}
	if c.MaxDelay < c.BaseDelay {
		c.MaxDelay = c.BaseDelay
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.Limiter == nil {
		c.Limiter = SharedLimiter()
	}
	if c.DescribeLimiter == nil {
		c.DescribeLimiter = SharedDescribeLimiter()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.OnCall == nil {
		c.OnCall = func(string, string) {}
	}
	if c.Clock == nil {
		c.Clock = approval.SystemClock{}
	}
	return c, nil
}

// parseEndpoint splits an endpoint URL into the SDK's scheme ("HTTP" or
// "HTTPS") and host[:port]. An empty endpoint means the SDK's default.
func parseEndpoint(raw string) (scheme, host string, err error) {
	if raw == "" {
		return "", "", nil
	}
	const want = "want a URL such as https://cvm.tencentcloudapi.com or http://127.0.0.1:9000"
	u, perr := url.Parse(raw)
	if perr != nil {
		return "", "", fmt.Errorf("not a URL; %s", want)
	}
	switch {
	case u.User != nil:
		// Never echo the value: it may hold a password.
		return "", "", fmt.Errorf("must not contain user information; %s", want)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", "", fmt.Errorf("scheme must be http or https; %s", want)
	case u.Host == "" || u.Hostname() == "":
		return "", "", fmt.Errorf("has no host; %s", want)
	case u.Path != "" && u.Path != "/":
		return "", "", fmt.Errorf("must not have a path (requests are signed for /); %s", want)
	case u.RawQuery != "" || u.Fragment != "":
		return "", "", fmt.Errorf("must not have a query or fragment; %s", want)
	}
	if p := u.Port(); p != "" {
		for _, r := range p {
			if r < '0' || r > '9' {
				return "", "", fmt.Errorf("has a bad port; %s", want)
			}
		}
	}
	return strings.ToUpper(u.Scheme), u.Host, nil
}

// validRegion reports whether s looks like a Tencent Cloud region name,
// such as ap-guangzhou or na-siliconvalley.
func validRegion(s string) bool {
	if len(s) < 4 || len(s) > 40 || !strings.Contains(s, "-") || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}
