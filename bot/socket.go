package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// RunSocketMode receives commands and interactions over a Socket Mode
// connection opened with appToken (xapp-…, never logged) and answers each
// envelope with the same handling as the HTTP endpoints, the immediate
// answer travelling as the ack's payload. It reconnects when Slack asks to
// and returns nil when ctx ends, or the error that made it stop (for
// example an invalid token).
func (h *Handler) RunSocketMode(ctx context.Context, appToken string) error {
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
			if err == nil {
				err = errors.New("connection ended")
			}
			return fmt.Errorf("socket mode: %w", err)
		case evt := <-client.Events:
			h.socketEvent(ctx, client, evt)
		}
	}
}

func (h *Handler) socketEvent(ctx context.Context, client *socketmode.Client, evt socketmode.Event) {
	switch evt.Type {
	case socketmode.EventTypeConnecting:
		h.log.Debug("socket mode connecting")
	case socketmode.EventTypeConnected:
		h.log.Info("socket mode connected")
	case socketmode.EventTypeHello:
		h.log.Debug("socket mode hello")
	case socketmode.EventTypeDisconnect:
		h.log.Info("socket mode: Slack asked to reconnect")
	case socketmode.EventTypeConnectionError:
		if ce, ok := evt.Data.(*slack.ConnectionErrorEvent); ok {
			h.log.Warn("socket mode connection failed", "attempt", ce.Attempt, "backoff", ce.Backoff.String(), "err", ce.ErrorObj)
		} else {
			h.log.Warn("socket mode connection failed")
		}
	case socketmode.EventTypeInvalidAuth:
		h.log.Error("socket mode: Slack refused the app token")
	case socketmode.EventTypeIncomingError, socketmode.EventTypeErrorBadMessage, socketmode.EventTypeErrorWriteFailed:
		h.log.Warn("socket mode: bad or lost message", "type", string(evt.Type))
	case socketmode.EventTypeSlashCommand, socketmode.EventTypeInteractive, socketmode.EventTypeEventsAPI:
		if evt.Request == nil {
			return
		}
		req := *evt.Request
		received := time.Now()
		if !h.spawn(func(context.Context) { h.socketEnvelope(ctx, client, req, received) }) {
			// Not acking lets Slack deliver the envelope to another connection.
			h.log.Info("socket mode: envelope left for another connection while shutting down")
		}
	}
}

// socketEnvelope decodes one envelope, handles it and acks it with the
// immediate answer.
func (h *Handler) socketEnvelope(ctx context.Context, client *socketmode.Client, req socketmode.Request, received time.Time) {
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
