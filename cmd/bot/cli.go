package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"rebootbot/approval"
	"rebootbot/etcdstore"
)

// usage is what `bot --help` prints.
const usage = `usage: bot [command] [flags]

rebootbot reboots Tencent Cloud CVM instances from Slack once the policy's
approvals are in.

commands:
  serve          run the bot (the default)
  demo           the whole flow on this machine, no credentials
  slack-standin  a local stand-in for Slack's Web API, to try serve without a workspace
  emulator       run the CVM emulator alone
  bench          measure the bot against the emulator and a Slack stand-in
  audit          audit lookups: bot audit list|verify …
  version        print the version

Configuration: bot serve has no flags and no file of its own; it reads
environment variables: the Slack app's tokens (SLACK_*), Tencent Cloud's
credentials and region (TENCENTCLOUD_*) and the bot's settings (BOT_*),
among them BOT_POLICY, the YAML file that says who may approve what.
"bot serve --help" lists every variable with its default.

"bot COMMAND --help" describes each command.
`

// envVar is an environment variable bot serve reads.
type envVar struct {
	name, def, meaning string
}

// serveVars are every variable bot serve reads, in the order its help
// lists them.
var serveVars = []envVar{
	{"SLACK_BOT_TOKEN", "required", "the bot token (xoxb-…)"},
	{"SLACK_SIGNING_SECRET", "required in HTTP mode", "verifies the HTTP requests Slack sends"},
	{"SLACK_APP_TOKEN", "unset: HTTP mode", "app-level token (xapp-…); when set, Socket Mode is used and no public URL is needed"},
	{"SLACK_API_URL", "https://slack.com/api/", "base URL of Slack's Web API (bot slack-standin prints a local one)"},
	{"BOT_LISTEN_ADDR", ":8080", "HTTP listen address: /slack/commands, /slack/interactions, /healthz, /metrics"},
	{"BOT_DB", "rebootbot.db", "the bbolt database file: requests and the audit log (unused with BOT_ETCD_ENDPOINTS)"},
	{"BOT_ETCD_ENDPOINTS", "unset: bbolt", "comma-separated etcd client URLs; set: state in etcd, and several replicas may run"},
	{"BOT_ETCD_PREFIX", etcdstore.DefaultPrefix, "etcd key prefix, so that several bots can share a cluster"},
	{"BOT_ETCD_CA", "unset", "etcd: PEM certificates to trust (TLS)"},
	{"BOT_ETCD_CERT", "unset", "etcd: client certificate (PEM), with BOT_ETCD_KEY"},
	{"BOT_ETCD_KEY", "unset", "etcd: the client certificate's key (PEM)"},
	{"BOT_ETCD_USERNAME", "unset", "etcd: user name, with BOT_ETCD_PASSWORD"},
	{"BOT_ETCD_PASSWORD", "unset", "etcd: password; never logged"},
	{"BOT_ETCD_LEASE_TTL", etcdstore.DefaultLeaseTTL.String(), "etcd: the leader's lease; another replica takes over this long after the leader dies"},
	{"BOT_POLICY", "none", "policy file (YAML): approvers, required approvals, regions, rules"},
	{"BOT_APPROVERS", "none", "without BOT_POLICY: comma-separated user IDs (U…, W…) and user-group IDs (S…) who may approve"},
	{"BOT_MIN_APPROVALS", "1", "without BOT_POLICY: approvals a request needs"},
	{"BOT_REQUEST_TTL", "30m", "without BOT_POLICY: how long a request waits for approval (Go duration)"},
	{"BOT_POLL_INTERVAL", "5s", "how often a running reboot is checked"},
	{"BOT_REBOOT_TIMEOUT", "10m", "how long to wait for an instance to be RUNNING again"},
	{"TENCENTCLOUD_SECRET_ID", "the SDK's chain", "API SecretId; without it and the key: profile file, then CVM role"},
	{"TENCENTCLOUD_SECRET_KEY", "the SDK's chain", "API SecretKey; never logged"},
	{"TENCENTCLOUD_SESSION_TOKEN", "unset", "token of temporary credentials"},
	{"TENCENTCLOUD_REGION", approval.DefaultRegion, "region of requests that name none; a name no Tencent Cloud region has is reported at start-up"},
	{"TENCENTCLOUD_ENDPOINT", "the SDK's", "CVM API endpoint URL: http://127.0.0.1:9000 reaches bot emulator, https://cvm.intl.tencentcloudapi.com the international site"},
}

// serveHelp is what `bot serve --help` prints.
func serveHelp() string {
	var b strings.Builder
	b.WriteString(`usage: bot serve

Runs the bot until SIGINT or SIGTERM. It takes no flags: it is configured
by the environment variables below, and refuses to start without either
BOT_POLICY or BOT_APPROVERS, since nobody could approve.

`)
	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "variable\tdefault\tmeaning")
	for _, v := range serveVars {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v.name, v.def, v.meaning)
	}
	tw.Flush()
	return b.String()
}

const demoHelp = `usage: bot demo [--replicas N]

Runs the whole flow on this machine, with no credentials: the real bot, an
embedded CVM emulator and a local stand-in for Slack's Web API, driven
through the bot's real signed HTTP endpoints. It prints the conversation and
the audit trail, and exits 0 when every step went as it should.

  --replicas N   run N (2 to 5) replicas of this binary on an embedded
                 N-member etcd cluster instead: the command and the clicks
                 go to different replicas, the leader is killed with SIGKILL
                 in the middle of the reboot, and another replica takes over
                 and finishes it, one reboot per instance
`

const versionHelp = `usage: bot version

Prints the version.
`

// usageError is a command line cmd cannot run with: main prints it as one
// line with a hint to the command's help and exits with status 2.
func usageError(cmd string, err error) error {
	return &exitError{Code: 2, Msg: fmt.Sprintf("%s: %v (see %s --help)", cmd, err, helpFor(cmd))}
}

// helpFor names the command whose --help describes cmd: the audit
// subcommands share `bot audit --help`.
func helpFor(cmd string) string {
	if strings.HasPrefix(cmd, "bot audit ") {
		return "bot audit"
	}
	return cmd
}

// unknownFlag is the error for a flag where a command was expected,
// worded as the flag package words it.
func unknownFlag(arg string) error {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	return fmt.Errorf("flag provided but not defined: -%s", name)
}

// parseFlags parses args into fs for cmd. It reports whether to go on:
// after -h or --help it prints help to stdout and returns false. A bad
// flag, or an argument when none is taken, is a usageError.
func parseFlags(fs *flag.FlagSet, args []string, help string, stdout io.Writer) (bool, error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			io.WriteString(stdout, help)
			return false, nil
		}
		return false, usageError(fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return false, usageError(fs.Name(), fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	return true, nil
}

// noFlags parses the arguments of a command that takes none.
func noFlags(cmd string, args []string, help string, stdout io.Writer) (bool, error) {
	return parseFlags(flag.NewFlagSet(cmd, flag.ContinueOnError), args, help, stdout)
}
