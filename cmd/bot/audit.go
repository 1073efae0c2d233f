package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"rebootbot/approval"
	"rebootbot/auditapi"
	"rebootbot/etcdstore"
	"rebootbot/store"
)

const auditUsage = `usage: bot audit list [flags]     print audit events, newest first
       bot audit verify [--db PATH]  check the audit log's hash chain

list flags:
  --request R-42         events of one request
  --instance ins-…       events concerning one instance
  --user U…              events by a user or about their requests
  --since 24h|RFC3339    from this time on (a duration back from now: 90m, 24h, 7d;
                         or a time: 2006-01-02T15:04:05Z, 2006-01-02)
  --until 24h|RFC3339    before this time
  --limit N              at most N events; default 50 for table, all for jsonl
                         and csv; 0 means all
  --oldest               oldest first
  --format table|jsonl|csv
                         table: aligned columns for people (default)
                         jsonl: one JSON event a line, exactly as stored and hashed
                         csv:   seq,time,request_id,type,actor,instances,details
  --db PATH              the database (default $BOT_DB, else rebootbot.db)

verify exits 0 when the chain is intact and 1 naming the first record whose
content or link does not match.

Both commands work while the bot runs: when it holds the database they ask it
through its loopback admin endpoint (announced in PATH.admin).

With BOT_ETCD_ENDPOINTS set (and the other BOT_ETCD_* variables bot serve
reads), both read the etcd cluster the replicas share, unless --db names a
database file.
`

// lockWait is how long the CLI waits for the database before asking the
// running bot instead.
const lockWait = 200 * time.Millisecond

// audit runs `bot audit <args>`: list or verify. Output goes to stdout. It
// returns an *exitError with status 1 when `audit verify` found a bad
// record and 2 for a usage error; any other error means the command could
// not run.
func audit(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError("bot audit", errors.New("say list or verify"))
	}
	switch args[0] {
	case "list":
		return auditList(ctx, args[1:], getenv, stdout, stderr)
	case "verify":
		return auditVerify(ctx, args[1:], getenv, stdout, stderr)
	case "help", "-h", "-help", "--help":
		io.WriteString(stdout, auditUsage)
		return nil
	}
	if strings.HasPrefix(args[0], "-") {
		return usageError("bot audit", unknownFlag(args[0]))
	}
	return usageError("bot audit", fmt.Errorf("unknown command %q", args[0]))
}

// auditSource is where events come from: the file itself, or the running
// bot that holds it.
type auditSource interface {
	AuditJSON(ctx context.Context, q approval.AuditQuery, fn func(raw []byte) error) error
	Verify(ctx context.Context) (uint64, error)
}

// listOptions are the parsed flags of `audit list`.
type listOptions struct {
	query  approval.AuditQuery
	format string
	db     string
	more   bool // fetch one event past the limit to tell whether more match
}

func parseList(args []string, getenv func(string) string, now time.Time) (listOptions, error) {
	var (
		o                       listOptions
		request, instance, user string
		since, until            string
		limit                   int
		oldest                  bool
		fs                      = newFlagSet("bot audit list")
	)
	fs.StringVar(&request, "request", "", "")
	fs.StringVar(&instance, "instance", "", "")
	fs.StringVar(&user, "user", "", "")
	fs.StringVar(&since, "since", "", "")
	fs.StringVar(&until, "until", "", "")
	fs.IntVar(&limit, "limit", -1, "") // -1: not given
	fs.BoolVar(&oldest, "oldest", false, "")
	fs.StringVar(&o.format, "format", "table", "")
	fs.StringVar(&o.db, "db", "", "")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	limitSet := false
	fs.Visit(func(f *flag.Flag) { limitSet = limitSet || f.Name == "limit" })
	q := &o.query
	q.Oldest = oldest
	if request != "" {
		n, ok := approval.ParseRequestID(request)
		if !ok {
			return o, fmt.Errorf("--request %q is not a request ID like R-42", request)
		}
		q.RequestID = approval.FormatRequestID(n)
	}
	if instance != "" {
		if !approval.ValidInstanceID(instance) {
			return o, fmt.Errorf("--instance %q is not an instance ID like ins-1a2b3c4d", instance)
		}
		q.Instance = instance
	}
	if user != "" {
		q.User = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(user, "<"), "@"), ">")
		if q.User == "" {
			return o, fmt.Errorf("--user %q is not a Slack user ID", user)
		}
	}
	var err error
	if since != "" {
		if q.Since, err = parseWhen(since, now); err != nil {
			return o, fmt.Errorf("--since: %w", err)
		}
	}
	if until != "" {
		if q.Until, err = parseWhen(until, now); err != nil {
			return o, fmt.Errorf("--until: %w", err)
		}
	}
	switch o.format {
	case "table", "jsonl", "csv":
	default:
		return o, fmt.Errorf("--format %q: say table, jsonl or csv", o.format)
	}
	switch {
	case limit < 0 && limitSet:
		return o, fmt.Errorf("--limit %d: say a number of events, or 0 for all", limit)
	case limit < 0 && o.format == "table":
		q.Limit = 50
	case limit > 0:
		q.Limit = limit
	}
	if o.format == "table" && q.Limit > 0 {
		o.more = true
		q.Limit++
	}
	return o, nil
}

func auditList(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseList(args, getenv, time.Now())
	if err != nil {
		return auditUsageError(stdout, "bot audit list", err)
	}
	src, done, err := auditFrom(ctx, o.db, getenv)
	if err != nil {
		return err
	}
	defer done()
	bw := bufio.NewWriterSize(stdout, 64<<10)
	var f formatter
	switch o.format {
	case "jsonl":
		f = &jsonlFormatter{w: bw}
	case "csv":
		f = newCSVFormatter(bw)
	default:
		show := 0
		if o.more {
			show = o.query.Limit - 1
		}
		f = newTableFormatter(bw, show)
	}
	err = src.AuditJSON(ctx, o.query, f.add)
	if ferr := f.finish(); err == nil {
		err = ferr
	}
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return fmt.Errorf("audit list: %w", err)
	}
	if t, ok := f.(*tableFormatter); ok && o.more && t.truncated {
		fmt.Fprintf(stderr, "More events match; --limit N shows more, --limit 0 all of them.\n")
	}
	return nil
}

func auditVerify(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bot audit verify")
	db := fs.String("db", "", "")
	err := fs.Parse(args)
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err != nil {
		return auditUsageError(stdout, "bot audit verify", err)
	}
	src, done, err := auditFrom(ctx, *db, getenv)
	if err != nil {
		return err
	}
	defer done()
	n, err := src.Verify(ctx)
	var ve *approval.VerifyError
	switch {
	case errors.As(err, &ve):
		fmt.Fprintf(stdout, "audit log BROKEN at record %d: %s\n", ve.Seq, ve.Reason)
		fmt.Fprintf(stdout, "%d records before it are intact.\n", n)
		return &exitError{Code: 1, Msg: fmt.Sprintf("audit verify: record %d does not match", ve.Seq)}
	case err != nil:
		return fmt.Errorf("audit verify: %w", err)
	}
	fmt.Fprintf(stdout, "audit log intact: %d events\n", n)
	return nil
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// auditUsageError answers a bad command line: help on stdout for -h, else
// a usageError.
func auditUsageError(stdout io.Writer, cmd string, err error) error {
	if errors.Is(err, flag.ErrHelp) {
		io.WriteString(stdout, auditUsage)
		return nil
	}
	return usageError(cmd, err)
}

// dbPath picks the database: the flag, else BOT_DB, else rebootbot.db.
func dbPath(flagValue string, getenv func(string) string) string {
	if flagValue != "" {
		return flagValue
	}
	if getenv != nil {
		if p := getenv("BOT_DB"); p != "" {
			return p
		}
	}
	return "rebootbot.db"
}

// etcdDialWait bounds how long `bot audit` waits for the etcd cluster.
const etcdDialWait = 10 * time.Second

// auditFrom opens where bot serve keeps the audit log: the etcd cluster
// when BOT_ETCD_ENDPOINTS is set and no --db was given, else the database
// file (openSource).
func auditFrom(ctx context.Context, dbFlag string, getenv func(string) string) (auditSource, func(), error) {
	if dbFlag == "" && getenv != nil {
		cfg, ok, err := etcdstore.ConfigFromEnv(getenv)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			ctx, cancel := context.WithTimeout(ctx, etcdDialWait)
			defer cancel()
			s, err := etcdstore.Open(ctx, cfg, etcdstore.Options{})
			if err != nil {
				return nil, nil, err
			}
			return s, func() { s.Close() }, nil
		}
	}
	return openSource(dbPath(dbFlag, getenv))
}

// openSource opens the database for reading or, when the bot holds it,
// connects to the bot's admin endpoint.
func openSource(path string) (auditSource, func(), error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("no database at %s (say --db PATH or set BOT_DB)", path)
		}
		return nil, nil, err
	}
	db, err := store.Open(path, store.Options{Timeout: lockWait, ReadOnly: true})
	if err == nil {
		return db, func() { db.Close() }, nil
	}
	if !errors.Is(err, store.ErrLocked) {
		return nil, nil, err
	}
	c, err := auditapi.Dial(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s is locked by another process that does not serve audit requests (no %s); run this where the bot runs, or stop that process", path, auditapi.File(path))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s is locked by another process: %w", path, err)
	}
	return c, func() {}, nil
}

// parseWhen reads a point in time: a duration back from now (Go syntax,
// plus d for days) or an RFC 3339 time or date.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if d, ok := parseAgo(s); ok {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither a duration back from now (90m, 24h, 7d) nor a time (2006-01-02T15:04:05Z)", s)
}

// parseAgo reads a non-negative duration such as 90m, 24h or 7d.
func parseAgo(s string) (time.Duration, bool) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || !(n >= 0 && n <= 36500) {
			return 0, false
		}
		return time.Duration(n * float64(24*time.Hour)), true
	}
	d, err := time.ParseDuration(s)
	return d, err == nil && d >= 0
}
