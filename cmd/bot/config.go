package main

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"rebootbot/approval"
	"rebootbot/approval/policyfile"
	"rebootbot/cloud"
	"rebootbot/etcdstore"
)

// config is everything `bot serve` reads from the environment.
type config struct {
	BotToken      string
	SigningSecret string
	AppToken      string // set: Socket Mode
	APIURL        string
	ListenAddr    string
	DBPath        string
	PollInterval  time.Duration
	RebootTimeout time.Duration
	Policy        *approval.Policy
	Warnings      []string
	Cloud         cloud.Config
	// Etcd is the cluster the state is kept in when OnEtcd; otherwise it
	// is in the bbolt file DBPath.
	Etcd   etcdstore.Config
	OnEtcd bool
}

// LogValue describes the configuration for the start-up log without any
// secret.
func (c *config) LogValue() slog.Value {
	mode := "http"
	if c.AppToken != "" {
		mode = "socket"
	}
	state := slog.String("db", c.DBPath)
	if c.OnEtcd {
		state = slog.String("store", c.Etcd.String())
	}
	return slog.GroupValue(
		slog.String("mode", mode), slog.String("listen", c.ListenAddr), state,
		slog.String("slack_api", c.APIURL), slog.String("region", c.Policy.DefaultRegion),
		slog.Int("min_approvals", c.Policy.MinApprovals), slog.Duration("request_ttl", c.Policy.RequestTTL),
		slog.Duration("poll_interval", c.PollInterval), slog.Duration("reboot_timeout", c.RebootTimeout),
	)
}

// unknownRegion is a configured region that no Tencent Cloud region
// matches, and where it was configured.
type unknownRegion struct {
	source, region, nearest string
}

// unknownRegions lists the configured regions the official SDK does not
// name: likely typing mistakes that would fail every request there.
func (c *config) unknownRegions() []unknownRegion {
	var out []unknownRegion
	add := func(source, region string) {
		if region != "" && !cloud.KnownRegion(region) {
			out = append(out, unknownRegion{source, region, cloud.NearestRegion(region)})
		}
	}
	add("TENCENTCLOUD_REGION", c.Cloud.DefaultRegion)
	for _, r := range c.Policy.Regions {
		add("BOT_POLICY regions", r)
	}
	if c.Policy.DefaultRegion != c.Cloud.DefaultRegion {
		add("BOT_POLICY default region", c.Policy.DefaultRegion)
	}
	return out
}

// loadConfig reads and checks the environment. Each error is one line that
// names the variable and never contains a secret.
func loadConfig(getenv func(string) string) (*config, error) {
	env := func(k, def string) string {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			return v
		}
		return def
	}
	c := &config{
		BotToken:      env("SLACK_BOT_TOKEN", ""),
		SigningSecret: env("SLACK_SIGNING_SECRET", ""),
		AppToken:      env("SLACK_APP_TOKEN", ""),
		ListenAddr:    env("BOT_LISTEN_ADDR", ":8080"),
		DBPath:        env("BOT_DB", "rebootbot.db"),
	}
	switch {
	case c.BotToken == "":
		return nil, fmt.Errorf("SLACK_BOT_TOKEN is required (the bot token, xoxb-…)")
	case !strings.HasPrefix(c.BotToken, "xoxb-"):
		return nil, fmt.Errorf("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
	case c.AppToken != "" && !strings.HasPrefix(c.AppToken, "xapp-"):
		return nil, fmt.Errorf("SLACK_APP_TOKEN must be an app-level token starting with xapp-")
	case c.AppToken == "" && c.SigningSecret == "":
		return nil, fmt.Errorf("SLACK_SIGNING_SECRET is required in HTTP mode (set SLACK_APP_TOKEN to use Socket Mode instead)")
	}
	api, err := apiURL(env("SLACK_API_URL", "https://slack.com/api/"))
	if err != nil {
		return nil, err
	}
	c.APIURL = api
	if c.PollInterval, err = durationVar(getenv, "BOT_POLL_INTERVAL", 5*time.Second, 100*time.Millisecond, time.Hour); err != nil {
		return nil, err
	}
	if c.RebootTimeout, err = durationVar(getenv, "BOT_REBOOT_TIMEOUT", 10*time.Minute, time.Second, 24*time.Hour); err != nil {
		return nil, err
	}
	if c.Policy, c.Warnings, err = policyfile.FromEnv(getenv); err != nil {
		return nil, err
	}
	if c.Cloud, err = cloud.ConfigFromEnv(getenv); err != nil {
		return nil, err
	}
	if c.Etcd, c.OnEtcd, err = etcdstore.ConfigFromEnv(getenv); err != nil {
		return nil, err
	}
	return c, nil
}

// apiURL checks SLACK_API_URL and gives it the trailing slash slack-go
// expects.
func apiURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("SLACK_API_URL must be an http(s) URL such as https://slack.com/api/")
	}
	if !strings.HasSuffix(raw, "/") {
		raw += "/"
	}
	return raw, nil
}

func durationVar(getenv func(string) string, name string, def, lo, hi time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		return 0, fmt.Errorf("%s must be a Go duration from %s to %s, such as %s; got %q", name, lo, hi, def, v)
	}
	return d, nil
}
