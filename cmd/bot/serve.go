package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"rebootbot/approval"
	"rebootbot/auditapi"
	"rebootbot/bot"
	"rebootbot/cloud"
	"rebootbot/etcdstore"
	"rebootbot/metrics"
)

// drainTimeout is how long a stopping bot lets in-flight work finish; what
// is left then is resumed by the next start.
const drainTimeout = 25 * time.Second

// replicaName tells people which replica leads: its host, process and
// listening address.
func replicaName(addr string) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s pid %d %s", cmp.Or(host, "unknown host"), os.Getpid(), addr)
}

// writeProbeEvery is how often the store checks that its file can still
// be written while nothing else writes (see store.DB.Probe).
const writeProbeEvery = 15 * time.Second

// serve runs the bot until ctx ends or one of its transports (the HTTP
// server, the Socket Mode connection) dies; then it drains in-flight work
// the same way, and returns the transport's error.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if ok, err := noFlags("bot serve", args, serveHelp(), stdout); !ok {
		return err
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo, ReplaceAttr: durationText}))
	for _, w := range cfg.Warnings {
		log.Warn("configuration", "warning", w)
	}
	for _, r := range cfg.unknownRegions() {
		log.Warn("no Tencent Cloud region has this name; requests there will fail", "source", r.source, "region", r.region, "nearest", r.nearest)
	}
	app, err := start(ctx, cfg, log, nil)
	if err != nil {
		return err
	}
	defer reloadOnHangup(getenv, app.policy, log)()
	fmt.Fprintf(stdout, "rebootbot %s listening on http://%s\n", version, app.addr)
	var died error
	select {
	case <-ctx.Done():
		log.Info("stopping: draining in-flight work", "timeout", drainTimeout.String())
	case died = <-app.done:
		log.Error("stopping: the bot can no longer hear Slack; draining in-flight work", "err", died, "timeout", drainTimeout.String())
	}
	err = app.stop()
	if died == nil {
		return err
	}
	if err != nil {
		log.Warn("stopping", "err", err)
	}
	return died
}

// durationText writes a duration as Go writes it (30m0s, 250ms): slog's
// JSON handler would write nanoseconds, which nobody reads at a glance.
func durationText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// app is a running bot: its parts, for stopping them in order.
type app struct {
	addr    string
	state   *stateStore
	admin   *auditapi.Server // the bbolt file's audit endpoint; nil on etcd
	engine  *approval.Engine // answers Slack; with bbolt it also does the background work
	replica *replica         // on etcd: the background work, while this replica leads
	policy  policySetter     // every engine SIGHUP reloads the policy of
	handler *bot.Handler
	server  *http.Server
	done    chan error // the HTTP server's or Socket Mode's end, each an error for the user
	cancel  context.CancelFunc
	log     *slog.Logger
}

// start wires store, cloud, Slack and engine and starts serving. clock may
// be nil for the system clock.
func start(ctx context.Context, cfg *config, log *slog.Logger, clock approval.Clock) (*app, error) {
	counts := metrics.New(metrics.Options{CloudCodes: cloud.KnownCode})
	state, err := openState(ctx, cfg, log, counts)
	if err != nil {
		return nil, err
	}
	a := &app{state: state, log: log, done: make(chan error, 2)}
	ok := false
	defer func() {
		if !ok {
			state.Close()
		}
	}()

	cloudCfg := cfg.Cloud
	cloudCfg.Logger = log.With("component", "cloud")
	cloudCfg.OnCall = counts.CloudCall
	cvm, err := cloud.New(cloudCfg)
	if err != nil {
		return nil, err
	}
	// Every reboot, wait poll and look-up of the account rides the
	// dispatcher's shared calls.
	dispatcher := cloud.NewDispatcher(cvm)
	slack := bot.NewSlack(bot.SlackConfig{
		Token: cfg.BotToken, APIURL: cfg.APIURL, Logger: log.With("component", "slack"), Metrics: counts, Clock: clock,
	})
	self, err := slack.Identify(ctx)
	if err != nil {
		var refused *bot.TokenRefusedError
		if errors.As(err, &refused) {
			return nil, fmt.Errorf("SLACK_BOT_TOKEN: Slack refused the token (%s)", refused.Code)
		}
		return nil, fmt.Errorf("SLACK_BOT_TOKEN could not be checked with auth.test: %w", err)
	}
	log.Info("slack workspace", "team", self.Team, "team_id", self.TeamID, "bot_user", self.User, "bot_user_id", self.UserID, "bot_id", self.BotID)
	newEngine := func(s approval.Store, p *approval.Policy, passive bool) (*approval.Engine, error) {
		return approval.NewEngine(approval.Config{
			Store: s, Cloud: dispatcher, Rebooter: dispatcher, Notifier: slack, Groups: slack, Policy: p, Clock: clock,
			Logger: log.With("component", "engine"), PollInterval: cfg.PollInterval, RebootTimeout: cfg.RebootTimeout,
			Observer: counts.ObserveEvent, Passive: passive, Shared: state.etcd != nil,
		})
	}
	// On etcd every replica answers Slack and only the leader works in
	// the background; with bbolt the one process does both.
	if a.engine, err = newEngine(state.answering(), cfg.Policy, state.etcd != nil); err != nil {
		return nil, err
	}
	a.policy = a.engine
	a.handler = bot.NewHandler(bot.HandlerConfig{
		Engine: a.engine, Slack: slack, SigningSecret: cfg.SigningSecret, Clock: clock,
		Logger: log.With("component", "handler"), Metrics: counts, Health: state.health,
	})

	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("BOT_LISTEN_ADDR %s: %w", cfg.ListenAddr, err)
	}
	a.addr = ln.Addr().String()
	if state.db != nil {
		a.admin = auditapi.NewServer(state.db)
		if err := a.admin.Start(ctx); err != nil {
			ln.Close()
			return nil, fmt.Errorf("start the audit admin endpoint: %w", err)
		}
		if err := a.engine.Start(ctx); err != nil {
			ln.Close()
			a.admin.Close()
			return nil, err
		}
	} else {
		leader := etcdstore.NewLeader(state.etcd, replicaName(a.addr), cfg.Etcd.LeaseTTL)
		a.replica = startReplica(state.etcd, leader, cfg.Policy, cfg.PollInterval, log.With("component", "replica"),
			func(s approval.Store, p *approval.Policy) (*approval.Engine, error) { return newEngine(s, p, false) })
		a.policy = policySetters{a.engine, a.replica}
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", counts.Handler())
	mux.Handle("/", a.handler)
	a.server = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	go func() {
		if err := a.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.done <- fmt.Errorf("http server: %w", err)
		}
	}()
	var runCtx context.Context
	runCtx, a.cancel = context.WithCancel(context.Background())
	if cfg.AppToken != "" {
		go func() {
			err := a.handler.RunSocketMode(runCtx, cfg.AppToken)
			var refused *bot.AppTokenRefusedError
			switch {
			case errors.As(err, &refused):
				a.done <- fmt.Errorf("SLACK_APP_TOKEN was refused by Slack (%s): use the app-level token (xapp-…) of this app, with the connections:write scope", refused.Code)
			case err != nil && runCtx.Err() == nil:
				a.done <- err
			}
		}()
	}
	log.Info("rebootbot started", "version", version, "config", cfg, "addr", a.addr)
	ok = true
	return a, nil
}

// stop drains and closes everything in order: no new deliveries, then the
// work they started, then the store.
func (a *app) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	a.cancel()
	var errs []error
	if err := a.server.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	if err := a.handler.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("drain handlers: %w", err))
	}
	if err := a.engine.Close(ctx); err != nil {
		a.log.Warn("in-flight work left for the next start", "err", err)
	}
	if a.replica != nil {
		if err := a.replica.Close(ctx); err != nil {
			a.log.Warn("in-flight work left for the next leader", "err", err)
		}
	}
	if a.admin != nil {
		if err := a.admin.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := a.state.Close(); err != nil {
		errs = append(errs, err)
	}
	select {
	case err := <-a.done:
		errs = append(errs, err)
	default:
	}
	return errors.Join(errs...)
}
