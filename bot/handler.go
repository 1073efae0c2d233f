package bot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/slack-go/slack"

	"rebootbot/approval"
	"rebootbot/internal/background"
)

// MaxBodyBytes is the largest request body accepted from Slack.
const MaxBodyBytes = 1 << 20

// HandlerConfig configures the Slack endpoints.
type HandlerConfig struct {
	Engine Engine
	Slack  *Slack
	// SigningSecret verifies HTTP requests; never logged. Without one the
	// /slack/* endpoints refuse everything (Socket Mode does not need it).
	SigningSecret string
	Clock         approval.Clock // for signature timestamps and card times; nil: system clock
	Logger        *slog.Logger   // nil: discard
	Metrics       Metrics        // nil: not counted
	// Health reports whether the bot can work (the store can be read and
	// written); nil means always healthy. In Socket Mode /healthz also
	// fails after SocketDownLimit without a live connection.
	Health func(context.Context) error
	// AckBudget is how long a command that reads the store (status,
	// pending, audit, cancel) may take before Slack is answered with an
	// empty acknowledgement and the reply follows through response_url
	// (default 2 s, within Slack's 3).
	AckBudget time.Duration
	// TaskTimeout bounds the background work of one delivery (default 2 min).
	TaskTimeout time.Duration
	// ClickBudget is how long, from its arrival, a click's work may take
	// before it is answered (default ClickBudget). The stores give a
	// write under way a short grace beyond it, and the answer still has
	// to be written within Slack's 3 s.
	ClickBudget time.Duration
}

// ClickBudget is the default time a click's store work may take from its
// arrival: with the stores' grace for a write under way (300 ms) and the
// writing of the answer, Slack hears back within its 3 s.
const ClickBudget = 2200 * time.Millisecond

// Handler serves Slack's commands and interactions over HTTP
// (/slack/commands, /slack/interactions) and Socket Mode, plus /healthz.
// Both transports decode into the same handling.
type Handler struct {
	engine  Engine
	slack   *Slack
	secret  string
	clock   approval.Clock
	log     *slog.Logger
	metrics Metrics
	health  func(context.Context) error
	socket  socketLink
	budget  time.Duration
	taskTO  time.Duration
	clickTO time.Duration
	work    *background.Group // requests being created, answers being worked out
}

// NewHandler returns the Slack endpoints for cfg.
func NewHandler(cfg HandlerConfig) *Handler {
	h := &Handler{
		engine: cfg.Engine, slack: cfg.Slack, secret: cfg.SigningSecret, clock: cfg.Clock,
		log: cfg.Logger, metrics: cfg.Metrics, health: cfg.Health, budget: cfg.AckBudget, taskTO: cfg.TaskTimeout,
		clickTO: cfg.ClickBudget,
	}
	if h.clock == nil {
		h.clock = approval.SystemClock{}
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.metrics == nil {
		h.metrics = noMetrics{}
	}
	if h.budget <= 0 {
		h.budget = 2 * time.Second
	}
	if h.taskTO <= 0 {
		h.taskTO = 2 * time.Minute
	}
	if h.clickTO <= 0 {
		h.clickTO = ClickBudget
	}
	h.work = background.New()
	return h
}

// ServeHTTP routes /slack/commands, /slack/interactions and /healthz.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/slack/commands":
		h.serveSlack(w, r, kindCommand)
	case "/slack/interactions":
		h.serveSlack(w, r, kindInteraction)
	case "/healthz":
		h.serveHealth(w, r)
	default:
		http.NotFound(w, r)
	}
}

const (
	kindCommand     = "command"
	kindInteraction = "interaction"
)

// errMalformed marks a delivery that cannot be understood (answered 400).
var errMalformed = errors.New("malformed payload")

func (h *Handler) serveSlack(w http.ResponseWriter, r *http.Request, kind string) {
	start := time.Now()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.ContentLength > MaxBodyBytes {
		h.unhandled(w, kind, "oversize", http.StatusRequestEntityTooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.unhandled(w, kind, "oversize", http.StatusRequestEntityTooLarge)
			return
		}
		h.unhandled(w, kind, "unreadable", http.StatusBadRequest)
		return
	}
	err = &SignatureError{Reason: "no_secret"} // without a secret anyone could sign
	if h.secret != "" {
		err = Verify(h.secret, r.Header, body, h.clock.Now())
	}
	if err != nil {
		reason := signatureReason(err)
		h.metrics.SignatureRejected(reason)
		h.log.Warn("refused a Slack request", "path", r.URL.Path, "reason", reason, "remote", r.RemoteAddr)
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		h.unhandled(w, kind, "malformed", http.StatusBadRequest)
		return
	}
	var reply any
	ctx := withReceived(r.Context(), start)
	if kind == kindCommand {
		reply, err = h.Command(ctx, commandFromForm(form))
	} else {
		var cb slack.InteractionCallback
		cb, err = decodeInteraction([]byte(form.Get("payload")))
		if err == nil {
			reply, err = h.Interaction(ctx, &cb)
		}
	}
	if err != nil {
		h.unhandled(w, kind, "malformed", http.StatusBadRequest)
		return
	}
	writeReply(w, reply)
	h.metrics.ObserveAck(kind, time.Since(start))
}

// receivedKey is the context key under which a delivery's arrival time
// travels to the code that answers it.
type receivedKey struct{}

// withReceived returns ctx carrying when the delivery arrived.
func withReceived(ctx context.Context, at time.Time) context.Context {
	return context.WithValue(ctx, receivedKey{}, at)
}

// receivedAt returns when the delivery ctx carries arrived, or now when
// it carries none.
func receivedAt(ctx context.Context) time.Time {
	if at, ok := ctx.Value(receivedKey{}).(time.Time); ok {
		return at
	}
	return time.Now()
}

// deliveryContext returns a context for the store work an answer to a
// delivery waits for: it ends ClickBudget after the delivery arrived, and
// not when Slack hangs up, so that a write is never cut off by anything
// but that deadline.
func (h *Handler) deliveryContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithDeadline(h.work.Context(), receivedAt(ctx).Add(h.clickTO))
}

// unhandled answers a request that is not handled, with a log line and a metric.
func (h *Handler) unhandled(w http.ResponseWriter, kind, reason string, status int) {
	h.metrics.BadRequest(reason)
	h.log.Warn("refused a Slack request", "kind", kind, "reason", reason, "status", status)
	http.Error(w, http.StatusText(status), status)
}

func writeReply(w http.ResponseWriter, reply any) {
	if isNil(reply) {
		w.WriteHeader(http.StatusOK)
		return
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // Slack reads < > & in JSON strings either way
	if err := enc.Encode(reply); err != nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

func isNil(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case *Message:
		return v == nil
	case *slack.ViewSubmissionResponse:
		return v == nil
	}
	return false
}

func (h *Handler) serveHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	err := h.socket.check(h.clock.Now())
	if err == nil && h.health != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		err = h.health(ctx)
	}
	if err != nil {
		h.log.Error("health check failed", "err", err)
		http.Error(w, "unhealthy", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
}

// commandFromForm reads a slash command from its form fields.
func commandFromForm(f url.Values) slack.SlashCommand {
	return slack.SlashCommand{
		TeamID: f.Get("team_id"), TeamDomain: f.Get("team_domain"), EnterpriseID: f.Get("enterprise_id"),
		ChannelID: f.Get("channel_id"), ChannelName: f.Get("channel_name"),
		UserID: f.Get("user_id"), UserName: f.Get("user_name"),
		Command: f.Get("command"), Text: f.Get("text"),
		ResponseURL: f.Get("response_url"), TriggerID: f.Get("trigger_id"), APIAppID: f.Get("api_app_id"),
	}
}

// decodeInteraction reads an interaction payload (the JSON in the payload
// form field, or a Socket Mode envelope's payload).
func decodeInteraction(payload []byte) (slack.InteractionCallback, error) {
	var cb slack.InteractionCallback
	if len(payload) == 0 {
		return cb, fmt.Errorf("%w: no payload", errMalformed)
	}
	if err := json.Unmarshal(payload, &cb); err != nil {
		return cb, fmt.Errorf("%w: %v", errMalformed, err)
	}
	if cb.Type == "" {
		return cb, fmt.Errorf("%w: no type", errMalformed)
	}
	return cb, nil
}

// replyTo is where a late answer goes: the response_url when there is one,
// else an ephemeral message to user in channel.
type replyTo struct {
	responseURL, channel, user string
}

// deliver sends a late answer in the background once the commands and
// clicks being handled together let it (Engine.AfterLull); nothing waits
// for it meanwhile. Failures are logged; there is no one else to tell.
func (h *Handler) deliver(to replyTo, msg *Message) {
	queued := h.engine.AfterLull(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, h.taskTO)
		defer cancel()
		if ctx.Err() != nil {
			h.log.Warn("answer not sent", "user", to.user, "err", context.Cause(ctx))
			return
		}
		h.send(ctx, to, msg)
	})
	if !queued {
		h.metrics.TaskDropped()
		h.log.Warn("answer not sent: the bot is stopping", "user", to.user)
	}
}

// send sends an answer to where to says.
func (h *Handler) send(ctx context.Context, to replyTo, msg *Message) {
	var err error
	switch {
	case to.responseURL != "":
		err = h.slack.Respond(ctx, to.responseURL, msg)
	case to.channel != "" && to.user != "":
		err = h.slack.PostEphemeral(ctx, to.channel, to.user, msg.Text)
	default:
		err = errors.New("nowhere to send it")
	}
	if err != nil && !errors.Is(err, errForeignResponseURL) { // Respond logged that one, with the host
		h.log.Warn("could not answer the user", "user", to.user, "err", err)
	}
}

// spawn runs fn in the background with its own deadline, unless the
// handler is closing; it reports whether fn was started.
func (h *Handler) spawn(fn func(ctx context.Context)) bool {
	started := h.work.Go(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, h.taskTO)
		defer cancel()
		fn(ctx)
	})
	if !started {
		h.metrics.TaskDropped()
	}
	return started
}

// quick runs fn in the background and returns its answer if it comes
// within the ack budget; otherwise it returns nil (an empty
// acknowledgement) and the answer is delivered to to when ready.
func (h *Handler) quick(ctx context.Context, to replyTo, fn func(ctx context.Context) *Message) *Message {
	done := make(chan *Message)
	abandoned := make(chan struct{})
	started := h.spawn(func(bg context.Context) {
		msg := fn(bg)
		select {
		case done <- msg:
		case <-abandoned:
			if msg != nil {
				h.deliver(to, msg)
			}
		}
	})
	if !started {
		return Ephemeral(shuttingDown)
	}
	t := time.NewTimer(h.budget)
	defer t.Stop()
	select {
	case msg := <-done:
		return msg
	case <-t.C:
	case <-ctx.Done():
	}
	close(abandoned)
	return nil
}

const shuttingDown = "rebootbot is restarting; try again in a minute."

// Close stops taking new work and waits for background work (requests
// being created, answers being worked out) until ctx ends; then it
// cancels what is left. The answers themselves go to the engine
// (Engine.AfterLull), which sends them, within its grace, before its own
// Close returns: close the handler before the engine.
func (h *Handler) Close(ctx context.Context) error {
	return h.work.Close(ctx)
}
