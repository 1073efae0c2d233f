package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// SocketDownLimit is how long Socket Mode may be without a live
// connection before /healthz says the bot is unhealthy: long enough for
// the reconnections Slack asks for, short enough that a bot that hears
// nothing is noticed.
const SocketDownLimit = 30 * time.Second

// AppTokenRefusedError says Slack refused the app-level token that opens
// Socket Mode connections: no connection can be opened with it. Code is
// Slack's error code; the token is never part of it.
type AppTokenRefusedError struct{ Code string }

func (e *AppTokenRefusedError) Error() string { return "Slack refused the app token: " + e.Code }

// appTokenRefusal returns an *AppTokenRefusedError when err is Slack
// refusing the app token, so that trying again cannot help, and nil
// otherwise. The codes are those that refuse any token (tokenRefused),
// and missing_scope: apps.connections.open needs connections:write alone,
// so a token without it can never connect.
func appTokenRefusal(err error) *AppTokenRefusedError {
	if code := slackErrorCode(err); tokenRefused(code) || code == "missing_scope" {
		return &AppTokenRefusedError{Code: code}
	}
	return nil
}

// socketLink is the state of the Socket Mode connection, for /healthz.
type socketLink struct {
	mu     sync.Mutex
	active bool      // Socket Mode is in use
	up     bool      // a connection is open
	since  time.Time // when the connection last went down, or Socket Mode began
}

func (l *socketLink) begin(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.active, l.up, l.since = true, false, now
}

func (l *socketLink) set(up bool, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.up && !up {
		l.since = now
	}
	l.up = up
}

// check returns an error when Socket Mode has been without a live
// connection for more than SocketDownLimit.
func (l *socketLink) check(now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.active || l.up {
		return nil
	}
	if down := now.Sub(l.since); down > SocketDownLimit {
		return fmt.Errorf("socket mode: no live connection for %s", down.Round(time.Second))
	}
	return nil
}

// RunSocketMode receives commands and interactions over a Socket Mode
// connection opened with appToken (xapp-…, never logged) and answers each
// envelope with the same handling as the HTTP endpoints, the immediate
// answer travelling as the ack's payload. It reconnects when Slack asks to
// or the connection drops, and returns nil when ctx ends, or the error
// that made it stop: an *AppTokenRefusedError when Slack refuses the
// token. While it runs, /healthz fails once no connection has been open
// for SocketDownLimit.
func (h *Handler) RunSocketMode(ctx context.Context, appToken string) error {
	h.socket.begin(h.clock.Now())
	defer h.socket.set(false, h.clock.Now())
	logger := slog.NewLogLogger(h.log.Handler(), slog.LevelDebug)
	api := slack.New(h.slack.token,
		slack.OptionAppLevelToken(appToken),
		slack.OptionAPIURL(h.slack.apiURL),
		slack.OptionHTTPClient(h.slack.http),
		slack.OptionLog(logger))
	client := socketmode.New(api, socketmode.OptionLog(logger))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- client.RunContext(ctx) }()

	for {
		select {
		case err := <-runErr:
			if ctx.Err() != nil {
				return nil
			}
			if refused := appTokenRefusal(err); refused != nil {
				return refused
			}
			if err == nil {
				err = errors.New("connection ended")
			}
			return fmt.Errorf("socket mode: %w", err)
		case evt := <-client.Events:
			if err := h.socketEvent(ctx, client, evt); err != nil {
				return err
			}
		}
	}
}

// socketEvent handles one event of the Socket Mode client. It returns an
// error only when Socket Mode must stop.
func (h *Handler) socketEvent(ctx context.Context, client *socketmode.Client, evt socketmode.Event) error {
	switch evt.Type {
	case socketmode.EventTypeConnecting:
		h.socket.set(false, h.clock.Now())
		h.log.Debug("socket mode connecting")
	case socketmode.EventTypeConnected:
		h.socket.set(true, h.clock.Now())
		h.log.Info("socket mode connected")
	case socketmode.EventTypeHello:
		h.log.Debug("socket mode hello")
	case socketmode.EventTypeDisconnect:
		h.log.Info("socket mode: Slack asked to reconnect")
	case socketmode.EventTypeConnectionError:
		h.socket.set(false, h.clock.Now())
		ce, ok := evt.Data.(*slack.ConnectionErrorEvent)
		if !ok {
			h.log.Warn("socket mode connection failed")
			break
		}
		// slack-go gives up by itself only on some of the codes that
		// refuse a token and retries the others (not_allowed_token_type)
		// for ever.
		if refused := appTokenRefusal(ce.ErrorObj); refused != nil {
			return refused
		}
		h.log.Warn("socket mode connection failed", "attempt", ce.Attempt, "backoff", ce.Backoff.String(), "err", ce.ErrorObj)
	case socketmode.EventTypeInvalidAuth:
		h.socket.set(false, h.clock.Now())
		h.log.Error("socket mode: Slack refused the app token")
	case socketmode.EventTypeIncomingError, socketmode.EventTypeErrorBadMessage, socketmode.EventTypeErrorWriteFailed:
		h.log.Warn("socket mode: bad or lost message", "type", string(evt.Type))
	case socketmode.EventTypeSlashCommand, socketmode.EventTypeInteractive, socketmode.EventTypeEventsAPI:
		if evt.Request == nil {
			return nil
		}
		req := *evt.Request
		received := time.Now()
		if !h.spawn(func(context.Context) { h.socketEnvelope(ctx, client, req, received) }) {
			// Not acking lets Slack deliver the envelope to another connection.
			h.log.Info("socket mode: envelope left for another connection while shutting down")
		}
	}
	return nil
}

// socketEnvelope decodes one envelope, handles it and acks it with the
// immediate answer.
func (h *Handler) socketEnvelope(ctx context.Context, client *socketmode.Client, req socketmode.Request, received time.Time) {
	ctx = withReceived(ctx, received)
	var (
		reply any
		err   error
		kind  string
	)
	switch req.Type {
	case socketmode.RequestTypeSlashCommands:
		kind = kindCommand
		var sc slack.SlashCommand
		if err = json.Unmarshal(req.Payload, &sc); err == nil {
			reply, err = h.Command(ctx, sc)
		}
	case socketmode.RequestTypeInteractive:
		kind = kindInteraction
		var cb slack.InteractionCallback
		if cb, err = decodeInteraction(req.Payload); err == nil {
			reply, err = h.Interaction(ctx, &cb)
		}
	default:
		kind = req.Type
	}
	if err != nil {
		h.metrics.BadRequest("malformed")
		h.log.Warn("refused a Socket Mode envelope", "type", req.Type, "err", err)
		reply = nil
	}
	if isNil(reply) {
		err = client.AckCtx(ctx, req.EnvelopeID, nil)
	} else {
		err = client.AckCtx(ctx, req.EnvelopeID, reply)
	}
	if err != nil {
		h.log.Warn("socket mode ack failed", "type", req.Type, "err", err)
		return
	}
	h.metrics.ObserveAck(kind, time.Since(received))
}
