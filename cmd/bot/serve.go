package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"rebootbot/approval"
	"rebootbot/auditapi"
	"rebootbot/bot"
	"rebootbot/cloud"
	"rebootbot/metrics"
	"rebootbot/store"
)

// drainTimeout is how long a stopping bot lets in-flight work finish; what
// is left then is resumed by the next start.
const drainTimeout = 25 * time.Second

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
	defer reloadOnHangup(getenv, app.engine, log)()
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
	db      *store.DB
	admin   *auditapi.Server
	engine  *approval.Engine
	handler *bot.Handler
	server  *http.Server
	done    chan error // the HTTP server's or Socket Mode's end, each an error for the user
	cancel  context.CancelFunc
	log     *slog.Logger
}

// start wires store, cloud, Slack and engine and starts serving. clock may
// be nil for the system clock.
func start(ctx context.Context, cfg *config, log *slog.Logger, clock approval.Clock) (*app, error) {
	db, err := store.Open(cfg.DBPath, store.Options{
		Timeout: time.Second, Check: true, ProbeEvery: writeProbeEvery,
		OnWritable: func(err error) {
			if err != nil {
				log.Error("BOT_DB cannot be written: commands and clicks are refused and /healthz fails until it can", "db", cfg.DBPath, "err", err)
				return
			}
			log.Info("BOT_DB can be written again", "db", cfg.DBPath)
		},
	})
	if err != nil {
		var damaged *store.DamagedError
		switch {
		case errors.Is(err, store.ErrLocked):
			return nil, fmt.Errorf("BOT_DB %s is in use by another process (is another bot running?)", cfg.DBPath)
		case errors.As(err, &damaged):
			return nil, err
		}
		return nil, fmt.Errorf("BOT_DB %s: %w", cfg.DBPath, err)
	}
	a := &app{db: db, log: log, done: make(chan error, 2)}
	ok := false
	defer func() {
		if !ok {
			db.Close()
		}
	}()

	counts := metrics.New(metrics.Options{CloudCodes: cloud.KnownCode})
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
	a.engine, err = approval.NewEngine(approval.Config{
		Store: db, Cloud: dispatcher, Rebooter: dispatcher, Notifier: slack, Groups: slack, Policy: cfg.Policy, Clock: clock,
		Logger: log.With("component", "engine"), PollInterval: cfg.PollInterval, RebootTimeout: cfg.RebootTimeout,
		Observer: counts.ObserveEvent,
	})
	if err != nil {
		return nil, err
	}
	a.handler = bot.NewHandler(bot.HandlerConfig{
		Engine: a.engine, Slack: slack, SigningSecret: cfg.SigningSecret, Clock: clock,
		Logger: log.With("component", "handler"), Metrics: counts, Health: db.Check,
	})

	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("BOT_LISTEN_ADDR %s: %w", cfg.ListenAddr, err)
	}
	a.addr = ln.Addr().String()
	a.admin = auditapi.NewServer(db)
	if err := a.admin.Start(ctx); err != nil {
		ln.Close()
		return nil, fmt.Errorf("start the audit admin endpoint: %w", err)
	}
	if err := a.engine.Start(ctx); err != nil {
		ln.Close()
		a.admin.Close()
		return nil, err
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
	if err := a.admin.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := a.db.Close(); err != nil {
		errs = append(errs, err)
	}
	select {
	case err := <-a.done:
		errs = append(errs, err)
	default:
	}
	return errors.Join(errs...)
}
