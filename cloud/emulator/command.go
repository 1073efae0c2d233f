package emulator

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// The demo key pair `bot emulator` accepts when neither flags nor the
// environment name one. It guards nothing: the emulator is a toy cloud.
const (
	DemoSecretID  = "AKIDrebootbotDEMO"
	DemoSecretKey = "rebootbotDEMOkeyNotSecret"
)

// DefaultListen is where `bot emulator` listens unless told otherwise.
const DefaultListen = "127.0.0.1:9000"

// DefaultGenerateSeed is the seed `bot emulator` generates its instances
// with unless told otherwise: Generate(n, DefaultGenerateSeed) are the
// instances it serves by default.
const DefaultGenerateSeed = 1

// UsageError is a command line Command cannot run with: a flag it does not
// know, a flag's bad value, or an argument. The caller reports it in one
// line and exits with status 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return "emulator: " + e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// usagef returns a *UsageError.
func usagef(format string, a ...any) error { return &UsageError{Err: fmt.Errorf(format, a...)} }

// Command runs `bot emulator`: it seeds an emulator from a file or with
// generated instances, prints them and the address it listens on, and
// serves, over HTTPS with a generated certificate when asked, until ctx
// ends, logging each call on stderr. args are the arguments after
// "emulator".
func Command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bot emulator", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // a bad flag is one line, from the caller
	var (
		listen     = fs.String("listen", DefaultListen, "`address` to listen on (host:port; port 0 picks a free one)")
		secretID   = fs.String("secret-id", "", "SecretId to accept (default $TENCENTCLOUD_SECRET_ID, else "+DemoSecretID+")")
		secretKey  = fs.String("secret-key", "", "SecretKey to accept (default $TENCENTCLOUD_SECRET_KEY, else the demo key)")
		token      = fs.String("session-token", "", "session `token` clients must send, as temporary credentials do (X-TC-Token, or the Token parameter with HmacSHA1/HmacSHA256); default: none checked")
		useTLS     = fs.Bool("tls", false, "serve HTTPS with a certificate generated at start for 127.0.0.1, ::1 and localhost, and print where it was written")
		tlsCert    = fs.String("tls-cert", "", "`file` to write the generated certificate to with --tls (default: a new file in the temporary directory, removed on exit)")
		seedPath   = fs.String("seed", "", "JSON `file` of instances to serve (format below)")
		count      = fs.Int("instances", 5, "number of instances to generate when there is no seed file")
		fleet      = fs.Int("fleet", 0, "generate a fleet of `N` instances instead (up to 100000): tags role, env and team across the region's zones, 1 in 40 STOPPED")
		genSeed    = fs.Int64("generate-seed", DefaultGenerateSeed, "seed of the generated instances")
		region     = fs.String("region", DefaultRegion, "region of the generated instances")
		rebootTime = fs.Duration("reboot-duration", DefaultRebootDuration, "how long an instance stays REBOOTING")
		errorRate  = fs.Float64("error-rate", 0, "probability (0..1) that a call fails with one of --error-code")
		errorAct   = fs.String("error-action", "", "inject errors only into this action (default: every action)")
		latency    = fs.Duration("latency", 0, "latency added to every answer")
		perSecond  = fs.Int("calls-per-second", DefaultCallsPerSecond, "RebootInstances calls accepted per second (negative: unlimited)")
		describes  = fs.Int("describe-calls-per-second", DefaultDescribeCallsPerSecond, "DescribeInstances calls accepted per second (negative: unlimited)")
		codes      codeList
	)
	fs.Var(&codes, "error-code", "error `code` to inject (repeatable or comma-separated; default InternalError)")
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprint(stdout, usageIntro)
			fs.PrintDefaults()
			fmt.Fprint(stdout, usageSeed)
			return nil
		}
		return &UsageError{Err: err}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	switch {
	case *errorRate < 0 || *errorRate > 1:
		return usagef("--error-rate must be between 0 and 1")
	case *latency < 0:
		return usagef("--latency must not be negative")
	case *rebootTime <= 0:
		return usagef("--reboot-duration must be positive")
	case *perSecond == 0:
		return usagef("--calls-per-second must not be 0 (use a negative value for no limit)")
	case *describes == 0:
		return usagef("--describe-calls-per-second must not be 0 (use a negative value for no limit)")
	case *seedPath != "" && (set["instances"] || set["fleet"] || set["region"] || set["generate-seed"]):
		return usagef("--seed cannot be combined with --instances, --fleet, --region or --generate-seed")
	case set["fleet"] && set["instances"]:
		return usagef("give --fleet or --instances, not both")
	case set["fleet"] && (*fleet < 1 || *fleet > 100000):
		return usagef("--fleet must be between 1 and 100000")
	case *seedPath == "" && (*count < 1 || *count > 100000):
		return usagef("--instances must be between 1 and 100000")
	case *seedPath == "" && !validRegionName(*region):
		return usagef("--region %q is not a region name such as ap-guangzhou", *region)
	case len(codes) > 0 && *errorRate == 0:
		return usagef("--error-code needs --error-rate")
	case *tlsCert != "" && !*useTLS:
		return usagef("--tls-cert needs --tls")
	}
	for _, c := range codes {
		if !validCode(c) {
			return usagef("--error-code %q is not an error code such as InternalError or RequestLimitExceeded", c)
		}
	}
	if *errorAct != "" && actions[*errorAct] == nil {
		return usagef("--error-action %q is not one of the emulated actions", *errorAct)
	}

	id, key := *secretID, *secretKey
	if id == "" {
		id = os.Getenv("TENCENTCLOUD_SECRET_ID")
	}
	if key == "" {
		key = os.Getenv("TENCENTCLOUD_SECRET_KEY")
	}
	if id == "" && key == "" {
		id, key = DemoSecretID, DemoSecretKey
	}
	if id == "" || key == "" {
		return fmt.Errorf("emulator: a SecretId needs its SecretKey and the other way round (--secret-id, --secret-key or TENCENTCLOUD_SECRET_ID, TENCENTCLOUD_SECRET_KEY)")
	}

	var seed []Instance
	if *seedPath != "" {
		var err error
		if seed, err = LoadSeed(*seedPath); err != nil {
			return fmt.Errorf("emulator: %w", err)
		}
	} else {
		seed = generate(*count, *genSeed, *region)
		if set["fleet"] {
			seed = generateFleet(*fleet, *genSeed, *region)
		}
	}

	log := slog.New(slog.NewTextHandler(stderr, nil))
	e := New(Config{
		SecretID:               id,
		SecretKey:              key,
		Token:                  *token,
		RebootDuration:         *rebootTime,
		CallsPerSecond:         *perSecond,
		DescribeCallsPerSecond: *describes,
		Seed:                   time.Now().UnixNano(),
		OnCall: func(c Call) {
			attrs := []any{"action", c.Action, "region", c.Region, "request_id", c.RequestID}
			if len(c.InstanceIDs) > 0 {
				attrs = append(attrs, "instances", strings.Join(c.InstanceIDs, ","))
			}
			if c.ErrorCode != "" {
				log.Warn("call failed", append(attrs, "code", c.ErrorCode)...)
				return
			}
			log.Info("call", attrs...)
		},
	})
	if err := e.Add(seed...); err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	e.SetFaults(faultsFor(*errorRate, codes, *errorAct, *latency)...)

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	scheme, certPath := "http", ""
	if *useTLS {
		cert, certPEM, err := selfSignedCertificate(time.Now())
		if err == nil {
			certPath, err = writeCertificate(*tlsCert, certPEM)
		}
		if err != nil {
			ln.Close()
			return fmt.Errorf("emulator: %w", err)
		}
		if *tlsCert == "" {
			defer os.Remove(certPath)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		scheme = "https"
	}
	printInstances(stdout, e)
	fmt.Fprintf(stdout, "SecretId %s, region %s\n", id, regionsOf(seed))
	if *token != "" {
		fmt.Fprintln(stdout, "a session token is required (X-TC-Token, or the Token parameter)")
	}
	if certPath != "" {
		fmt.Fprintf(stdout, "TLS certificate (trust it as a CA): %s\n", certPath)
	}
	fmt.Fprintf(stdout, "listening on %s://%s\n", scheme, dialAddr(ln.Addr()))

	// The server's own complaints (a client that fails the TLS handshake, say)
	// go to the same log as the calls.
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("emulator: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	<-served
	log.Info("emulator stopped")
	return nil
}

// usageIntro and usageSeed frame the flag list of `bot emulator -h`.
const (
	usageIntro = `Usage: bot emulator [flags]

Runs a local stand-in for the Tencent Cloud CVM API 3.0 (version 2017-03-12)
on --listen, so that the bot, the official SDKs and tccli can be tried
without a Tencent Cloud account. It serves DescribeInstances,
DescribeInstancesStatus, RebootInstances, StartInstances and StopInstances
as the API documents them, and accepts requests signed with
TC3-HMAC-SHA256, HmacSHA256 or HmacSHA1, the host signed with or without
its port, within 5 minutes of its clock. It prints the instances it serves
and the address it listens on, then logs each call on stderr until
interrupted.

The key pair it accepts comes from --secret-id and --secret-key, else
TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY, else the demo pair
whose SecretId is ` + DemoSecretID + ` (the README gives its key).
With --tls it serves HTTPS only, with a certificate made at start; trust
that certificate as a CA in the client (Go: SSL_CERT_FILE=<file>).

Flags:
`
	usageSeed = `
Seed file (--seed):
  A JSON file holding a list of instances, or an object whose "instances"
  field is that list. Each instance is an object; only "id" is required:
    id           "ins-" and 8 lowercase letters or digits, unique in the file
    name         instance name (default: 未命名, as the console names it)
    zone         availability zone such as ap-guangzhou-3 (default: zone 3
                 of the region)
    region       region such as ap-shanghai (default: the zone's region,
                 else ap-guangzhou)
    state        an instance state such as RUNNING, STOPPED or
                 RESCUE_MODE (default RUNNING)
    private_ips  list of private IP addresses
    public_ips   list of public IP addresses
    tags         object of tag keys to values
  Unknown fields, malformed IDs, unknown states, zones outside their region
  and bad addresses are errors that name the file and the instance.
  Example:
    {"instances": [
      {"id": "ins-web00001", "name": "web-prod-01", "zone": "ap-guangzhou-3",
       "private_ips": ["10.0.1.12"], "public_ips": ["203.0.113.7"],
       "tags": {"env": "prod", "team": "storefront"}},
      {"id": "ins-db000001", "region": "ap-shanghai", "state": "STOPPED"}
    ]}
`
)

// writeCertificate writes a PEM certificate to path, or to a new file in
// the temporary directory when path is "", and returns where it went.
func writeCertificate(path string, certPEM []byte) (string, error) {
	if path != "" {
		if err := os.WriteFile(path, certPEM, 0o644); err != nil {
			return "", fmt.Errorf("writing the TLS certificate: %w", err)
		}
		return path, nil
	}
	f, err := os.CreateTemp("", "rebootbot-emulator-*.pem")
	if err != nil {
		return "", fmt.Errorf("writing the TLS certificate: %w", err)
	}
	_, err = f.Write(certPEM)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("writing the TLS certificate: %w", err)
	}
	return f.Name(), nil
}

// faultsFor turns the fault flags into faults. Each code gets an equal
// share of rate: code i fires with rate/k ÷ (1 − i·rate/k), so that with
// the faults rolled in order the first hit is code i with probability
// rate/k.
func faultsFor(rate float64, codes []string, action string, latency time.Duration) []Fault {
	var out []Fault
	if rate > 0 {
		if len(codes) == 0 {
			codes = []string{codeInternalError}
		}
		share := rate / float64(len(codes))
		for i, c := range codes {
			p := share / (1 - float64(i)*share)
			out = append(out, Fault{Action: action, Code: c, Rate: min(p, 1)})
		}
	}
	if latency > 0 {
		out = append(out, Fault{Latency: latency, Rate: 1})
	}
	return out
}

// codeList is a flag that collects error codes, repeated or
// comma-separated.
type codeList []string

func (c *codeList) String() string { return strings.Join(*c, ",") }

func (c *codeList) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*c = append(*c, part)
		}
	}
	return nil
}

// validCode reports whether s looks like an API error code: dotted words of
// letters and digits, such as UnsupportedOperation.InstanceStateStopped.
func validCode(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for part := range strings.SplitSeq(s, ".") {
		if part == "" || !(part[0] >= 'A' && part[0] <= 'Z') {
			return false
		}
		for _, r := range part {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				return false
			}
		}
	}
	return true
}

// listAtMost is the most instances printed one per line; a larger fleet
// is summarised.
const listAtMost = 50

// printInstances prints one line per instance: ID, name, state, zone and
// private address; a fleet gets a summary by zone and state, and by role.
func printInstances(w io.Writer, e *Emulator) {
	if ids := e.IDs(); len(ids) > listAtMost {
		printFleet(w, e, ids)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATE\tZONE\tPRIVATE IP")
	for _, id := range e.IDs() {
		s, _ := e.Status(id)
		ip := "-"
		if len(s.PrivateIPs) > 0 {
			ip = s.PrivateIPs[0]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, s.Name, s.State, s.Zone, ip)
	}
	tw.Flush()
}

// regionsOf lists the regions of the instances.
func regionsOf(ins []Instance) string {
	var out []string
	seen := map[string]bool{}
	for _, in := range ins {
		n, err := normalize(in)
		if err == nil && !seen[n.Region] {
			seen[n.Region] = true
			out = append(out, n.Region)
		}
	}
	if len(out) == 0 {
		return DefaultRegion
	}
	return strings.Join(out, ", ")
}

// dialAddr returns an address clients can dial: a wildcard listen address
// becomes the loopback one.
func dialAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	if tcp.IP == nil || tcp.IP.IsUnspecified() {
		return net.JoinHostPort("127.0.0.1", fmt.Sprint(tcp.Port))
	}
	return tcp.String()
}

// printFleet prints how many instances there are in each zone and state,
// and how many carry each role tag, so that a fleet of thousands fits on
// a screen and still suggests selectors to try.
func printFleet(w io.Writer, e *Emulator, ids []string) {
	byZone := map[[2]string]int{}
	byRole := map[string]int{}
	for _, id := range ids {
		s, _ := e.Status(id)
		byZone[[2]string{s.Zone, s.State}]++
		if role, ok := s.Tags["role"]; ok {
			byRole[role]++
		}
	}
	fmt.Fprintf(w, "%d instances\n", len(ids))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ZONE\tSTATE\tINSTANCES")
	for _, k := range slices.SortedFunc(maps.Keys(byZone), func(a, b [2]string) int {
		return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
	}) {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", k[0], k[1], byZone[k])
	}
	tw.Flush()
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SELECTOR\tINSTANCES")
	for _, role := range slices.Sorted(maps.Keys(byRole)) {
		fmt.Fprintf(tw, "tag:role=%s\t%d\n", role, byRole[role])
	}
	tw.Flush()
}
