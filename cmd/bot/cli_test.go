package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// mustBeUsageError checks that err is what main turns into one line on
// stderr and exit status 2: the problem, then where help is.
func mustBeUsageError(t *testing.T, err error, help string) {
	t.Helper()
	exit, ok := errors.AsType[*exitError](err)
	if !ok || exit.Code != 2 {
		t.Fatalf("got %v, want an *exitError with status 2", err)
	}
	if strings.Contains(exit.Msg, "\n") || !strings.HasPrefix(exit.Msg, "bot") {
		t.Errorf("message %q is not one line naming the command", exit.Msg)
	}
	if want := "(see " + help + " --help)"; !strings.HasSuffix(exit.Msg, want) {
		t.Errorf("message %q does not end with %q", exit.Msg, want)
	}
}

// runCLI runs the program with args and no environment.
func runCLI(args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	err = run(context.Background(), append([]string{"bot"}, args...), func(string) string { return "" }, &out, &errOut)
	return out.String(), errOut.String(), err
}

// TestHelp checks that --help of the program and of every command prints
// on stdout, exits 0, and that the program's help says how the bot is
// configured.
func TestHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"usage: bot", "slack-standin", "environment variables", "BOT_POLICY", "bot serve --help"}},
		{[]string{"-h"}, []string{"usage: bot", "bot serve --help"}},
		{[]string{"help"}, []string{"usage: bot", "bot serve --help"}},
		{[]string{"serve", "--help"}, []string{"usage: bot serve", "SLACK_BOT_TOKEN", "TENCENTCLOUD_ENDPOINT"}},
		{[]string{"serve", "-h"}, []string{"usage: bot serve"}},
		{[]string{"demo", "--help"}, []string{"usage: bot demo"}},
		{[]string{"slack-standin", "--help"}, []string{"usage: bot slack-standin", "--listen", "--signing-secret"}},
		{[]string{"emulator", "--help"}, []string{"-listen", "-seed"}},
		{[]string{"audit", "--help"}, []string{"usage: bot audit list"}},
		{[]string{"audit", "list", "--help"}, []string{"usage: bot audit list", "--limit"}},
		{[]string{"audit", "verify", "-h"}, []string{"usage: bot audit"}},
		{[]string{"version", "--help"}, []string{"usage: bot version"}},
		{[]string{"bench", "--help"}, []string{"usage: bot bench", "-requests"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			stdout, stderr, err := runCLI(tt.args...)
			if err != nil || stderr != "" {
				t.Fatalf("err %v, stderr %q; want help on stdout and nil", err, stderr)
			}
			for _, want := range tt.want {
				if !strings.Contains(stdout, want) {
					t.Errorf("help lacks %q:\n%s", want, stdout)
				}
			}
		})
	}
}

// TestBadCommandLines checks that a bad flag, argument or command anywhere
// ends in one line naming the problem and the --help to read, exit status
// 2, and nothing else printed.
func TestBadCommandLines(t *testing.T) {
	tests := []struct {
		args []string
		help string
		want string
	}{
		{[]string{"--colour"}, "bot", "flag provided but not defined: -colour"},
		{[]string{"frobnicate"}, "bot", `unknown command "frobnicate"`},
		{[]string{"serve", "--colour"}, "bot serve", "flag provided but not defined: -colour"},
		{[]string{"serve", "extra"}, "bot serve", `unexpected argument "extra"`},
		{[]string{"demo", "--colour"}, "bot demo", "flag provided but not defined"},
		{[]string{"demo", "now"}, "bot demo", `unexpected argument "now"`},
		{[]string{"slack-standin", "--colour"}, "bot slack-standin", "flag provided but not defined"},
		{[]string{"slack-standin", "--bot", "localhost:8080"}, "bot slack-standin", "--bot"},
		{[]string{"slack-standin", "--channel", "C0 OPS"}, "bot slack-standin", "--channel"},
		{[]string{"emulator", "--colour"}, "bot emulator", "flag provided but not defined"},
		{[]string{"emulator", "--error-rate", "2"}, "bot emulator", "--error-rate"},
		{[]string{"emulator", "serve"}, "bot emulator", `unexpected argument "serve"`},
		{[]string{"audit", "--colour=red"}, "bot audit", "flag provided but not defined: -colour"},
		{[]string{"audit", "list", "--colour"}, "bot audit", "flag provided but not defined"},
		{[]string{"audit", "list", "--limit", "-1"}, "bot audit", "--limit -1"},
		{[]string{"version", "--colour"}, "bot version", "flag provided but not defined"},
		{[]string{"bench", "--colour"}, "bot bench", "flag provided but not defined"},
		{[]string{"bench", "--requests", "0"}, "bot bench", "--requests"},
		{[]string{"bench", "--runs", "0"}, "bot bench", "--runs must be from 1 to 100"},
		{[]string{"bench", "now"}, "bot bench", `unexpected argument "now"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			stdout, stderr, err := runCLI(tt.args...)
			mustBeUsageError(t, err, tt.help)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("message %q does not say %q", err, tt.want)
			}
			if stdout != "" || stderr != "" {
				t.Errorf("printed besides the one line:\nstdout %q\nstderr %q", stdout, stderr)
			}
		})
	}
}

// TestServeHelpListsEveryVariable checks that bot serve --help names every
// environment variable that configuring serve reads, with its default.
func TestServeHelpListsEveryVariable(t *testing.T) {
	var asked []string
	env := map[string]string{
		"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "BOT_APPROVERS": "U1",
	}
	getenv := func(k string) string {
		if !slices.Contains(asked, k) {
			asked = append(asked, k)
		}
		return env[k]
	}
	if _, err := loadConfig(getenv); err != nil {
		t.Fatal(err)
	}
	// BOT_ETCD_ENDPOINTS set switches to etcd, which has variables of its
	// own.
	env["BOT_ETCD_ENDPOINTS"] = "http://127.0.0.1:2379"
	if _, err := loadConfig(getenv); err != nil {
		t.Fatal(err)
	}
	// BOT_POLICY set switches to the file; the SDK's credential chain reads
	// the token itself.
	asked = append(asked, "BOT_POLICY", "TENCENTCLOUD_SESSION_TOKEN")
	stdout, _, err := runCLI("serve", "--help")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(stdout, "\n")
	lines = lines[slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "variable ") }):]
	for _, name := range asked {
		i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, name+" ") })
		if i < 0 {
			t.Errorf("bot serve --help does not list %s", name)
			continue
		}
		v := serveVars[slices.IndexFunc(serveVars, func(v envVar) bool { return v.name == name })]
		if !strings.Contains(lines[i], "  "+v.def+"  ") || !strings.HasSuffix(lines[i], v.meaning) {
			t.Errorf("%s's line %q lacks its default or meaning", name, lines[i])
		}
	}
	for _, v := range serveVars {
		if !slices.Contains(asked, v.name) {
			t.Errorf("bot serve --help lists %s, which serve does not read", v.name)
		}
	}
}

// TestUnknownRegionsReported checks that start-up finds every configured
// region no Tencent Cloud region has, with the nearest known one.
func TestUnknownRegionsReported(t *testing.T) {
	policy := filepath.Join(t.TempDir(), "policy.yml")
	if err := os.WriteFile(policy, []byte("approvers: [U012ABCDEF]\nregions: [ap-shanghai, ap-shangai]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "BOT_POLICY": policy, "TENCENTCLOUD_REGION": "ap-guangzou",
	}
	cfg, err := loadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.unknownRegions()
	want := []unknownRegion{
		{"TENCENTCLOUD_REGION", "ap-guangzou", "ap-guangzhou"},
		{"BOT_POLICY regions", "ap-shangai", "ap-shanghai"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("unknownRegions = %v, want %v", got, want)
	}
	env["TENCENTCLOUD_REGION"] = "ap-guangzhou"
	env["BOT_POLICY"] = ""
	env["BOT_APPROVERS"] = "U012ABCDEF"
	if cfg, err = loadConfig(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if got := cfg.unknownRegions(); len(got) != 0 {
		t.Errorf("known regions reported: %v", got)
	}
}

func TestDemoReplicasCount(t *testing.T) {
	for _, n := range []string{"1", "6", "many"} {
		err := run(t.Context(), []string{"bot", "demo", "--replicas", n}, nil, io.Discard, io.Discard)
		var exit *exitError
		if !errors.As(err, &exit) || exit.Code != 2 || !strings.Contains(exit.Msg, "replicas") {
			t.Errorf("--replicas %s: %v, want a usage error naming --replicas", n, err)
		}
	}
}
