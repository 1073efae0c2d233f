package bot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"rebootbot/approval"
)

// Command handles a slash command, from HTTP or Socket Mode, and returns
// the immediate answer: a *Message, or nil for an empty acknowledgement.
// Slow work continues in the background. The error is errMalformed when
// the command cannot be understood.
func (h *Handler) Command(ctx context.Context, sc slack.SlashCommand) (any, error) {
	if !approval.ValidUserID(sc.UserID) || sc.ChannelID == "" {
		return nil, fmt.Errorf("%w: command without user or channel", errMalformed)
	}
	h.metrics.Delivery(kindCommand)
	to := replyTo{responseURL: sc.ResponseURL, channel: sc.ChannelID, user: sc.UserID}
	cmd, err := ParseCommand(sc.Text)
	if err != nil {
		if requestAttempt(sc.Text) {
			// A malformed request is still a request refused: audit it,
			// within the time Slack waits for the answer.
			in := approval.CreateInput{Key: commandKey(sc), Requester: sc.UserID, Channel: sc.ChannelID, Reason: Unescape(sc.Text)}
			rctx, cancel := h.deliveryContext(ctx)
			err = h.engine.RejectCommand(rctx, in, err)
			cancel()
		}
		return Ephemeral(approval.ErrorMessage(err) + "\n\n" + Usage), nil
	}
	switch c := cmd.(type) {
	case HelpCommand:
		return Ephemeral(Help), nil
	case FormCommand:
		if !h.spawn(func(ctx context.Context) { h.openForm(ctx, sc) }) {
			return Ephemeral(shuttingDown), nil
		}
		return nil, nil
	case CreateCommand:
		in := approval.CreateInput{
			Key: commandKey(sc), Requester: sc.UserID, Channel: sc.ChannelID, Reason: c.Reason,
			Instances: c.Instances, Selector: c.Selector, StopType: c.StopType, Region: c.Region, Waves: c.Waves,
		}
		if !h.spawn(func(ctx context.Context) { h.create(ctx, in, to, true) }) {
			return Ephemeral(shuttingDown), nil
		}
		return Ephemeral(h.checking(c)), nil
	case StatusCommand:
		return h.quick(ctx, to, func(ctx context.Context) *Message {
			if err := h.engine.MayView(ctx, sc.UserID, sc.ChannelID); err != nil {
				return h.errorReply(err)
			}
			r, err := h.engine.Get(ctx, c.RequestID)
			if err != nil {
				return h.errorReply(err)
			}
			if c.Page > 0 {
				return RenderStatusPage(r, c.Page)
			}
			return RenderStatus(r, h.clock.Now())
		}), nil
	case PendingCommand:
		return h.quick(ctx, to, func(ctx context.Context) *Message {
			if err := h.engine.MayView(ctx, sc.UserID, sc.ChannelID); err != nil {
				return h.errorReply(err)
			}
			rs, err := h.engine.Pending(ctx)
			if err != nil {
				return h.errorReply(err)
			}
			return RenderPending(rs, h.clock.Now())
		}), nil
	case AuditCommand:
		return h.quick(ctx, to, func(ctx context.Context) *Message {
			if err := h.engine.MayView(ctx, sc.UserID, sc.ChannelID); err != nil {
				return h.errorReply(err)
			}
			q := approval.AuditQuery{RequestID: c.RequestID, Instance: c.Instance, User: c.User, Limit: c.Limit}
			events, err := h.engine.Audit(ctx, q)
			if err != nil {
				return h.errorReply(err)
			}
			what := c.RequestID + c.Instance
			if c.User != "" {
				what = userRef(c.User)
			}
			return RenderAudit(what, events)
		}), nil
	case StopCommand:
		key := commandKey(sc)
		return h.quick(ctx, to, func(ctx context.Context) *Message {
			res, err := h.engine.Stop(ctx, key, c.RequestID, sc.UserID, nil)
			if err != nil {
				return h.errorReply(err)
			}
			return Ephemeral(res.Message)
		}), nil
	case CancelCommand:
		key := commandKey(sc)
		return h.quick(ctx, to, func(ctx context.Context) *Message {
			res, err := h.engine.Cancel(ctx, key, c.RequestID, sc.UserID)
			if err != nil {
				return h.errorReply(err)
			}
			return Ephemeral(res.Message)
		}), nil
	}
	return Ephemeral("I don't know that command.\n\n" + Usage), nil
}

// requestAttempt reports whether a command text that did not parse was
// meant as a reboot request rather than one of the other subcommands.
func requestAttempt(text string) bool {
	words := strings.Fields(Unescape(text))
	if len(words) == 0 {
		return false
	}
	switch strings.ToLower(strings.TrimLeft(words[0], "-—–")) {
	case "help", "h", "status", "cancel", "stop", "pending", "audit":
		return false
	}
	return true
}

// commandKey identifies a command delivery: its trigger_id, else a hash of
// its response_url (unique to each invocation, and a capability that is not
// stored as it is), else nothing (no replay protection is possible).
func commandKey(sc slack.SlashCommand) string {
	switch {
	case sc.TriggerID != "":
		return sc.TriggerID
	case sc.ResponseURL != "":
		sum := sha256.Sum256([]byte(sc.ResponseURL))
		return "command:" + hex.EncodeToString(sum[:16])
	}
	return ""
}

// checking is the immediate answer to a create command.
func (h *Handler) checking(c CreateCommand) string {
	ids := make([]string, 0, 5)
	for _, id := range c.Instances[:min(len(c.Instances), 5)] {
		ids = append(ids, "`"+id+"`")
	}
	s := strings.Join(ids, ", ")
	if n := len(c.Instances) - len(ids); n > 0 {
		s += fmt.Sprintf(" and %d more", n)
	}
	if !c.Selector.Empty() {
		sel := "the instances `" + escapeText(truncate(oneLine(strings.Join(c.Selector.Words(), " ")), 200)) + "` selects"
		if s == "" {
			s = sel
		} else {
			s += " and " + sel
		}
	}
	region := c.Region
	if region == "" {
		if p := h.engine.Policy(); p != nil {
			region = p.DefaultRegion
		}
	}
	if region != "" {
		s += " in " + escapeText(region)
	}
	return "Checking " + s + "…"
}

// errorReply turns an engine error into an ephemeral sentence; errors
// without a kind are logged and shown as a generic sentence.
func (h *Handler) errorReply(err error) *Message {
	if approval.ErrorKind(err) == approval.Internal {
		h.log.Error("handling a Slack request", "err", err)
	}
	return Ephemeral(approval.ErrorMessage(err))
}

// create files a request in the background and tells the requester how it
// went; on success the card in the channel says the rest. replace says
// whether the answer replaces the "Checking…" message.
func (h *Handler) create(ctx context.Context, in approval.CreateInput, to replyTo, replace bool) {
	r, err := h.engine.Create(ctx, in)
	var msg *Message
	switch {
	case err != nil:
		msg = h.errorReply(err)
	case r == nil:
		return
	case r.Card.TS == "":
		msg = Ephemeral(fmt.Sprintf("%s is filed; its approval card will appear here as soon as Slack takes it.", r.ID))
	default:
		msg = Ephemeral(fmt.Sprintf("%s is waiting for %d %s; the card is in the channel.", r.ID, r.Required, plural(r.Required, "approval", "approvals")))
	}
	msg.ReplaceOriginal = replace
	h.deliver(to, msg)
}

// openForm opens the request form for a bare /reboot.
func (h *Handler) openForm(ctx context.Context, sc slack.SlashCommand) {
	if sc.TriggerID == "" {
		h.deliver(replyTo{responseURL: sc.ResponseURL, channel: sc.ChannelID, user: sc.UserID}, Ephemeral("I could not open the form.\n\n"+Usage))
		return
	}
	// The trigger is valid for 3 seconds after the command.
	tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := h.slack.OpenView(tctx, sc.TriggerID, RequestForm(h.engine.Policy(), sc.ChannelID, sc.ResponseURL)); err != nil {
		h.log.Warn("could not open the request form", "user", sc.UserID, "err", err)
		h.deliver(replyTo{responseURL: sc.ResponseURL, channel: sc.ChannelID, user: sc.UserID},
			Ephemeral("Slack did not open the form in time; try again, or type the request:\n\n"+Usage))
	}
}

// Interaction handles a button click or a form submission, from HTTP or
// Socket Mode, and returns the immediate answer: nil for an empty
// acknowledgement, or a *slack.ViewSubmissionResponse. A click is answered
// only after the engine stored its effect.
func (h *Handler) Interaction(ctx context.Context, cb *slack.InteractionCallback) (any, error) {
	if !approval.ValidUserID(cb.User.ID) {
		return nil, fmt.Errorf("%w: interaction without a user", errMalformed)
	}
	h.metrics.Delivery(kindInteraction + ":" + string(cb.Type))
	switch cb.Type {
	case slack.InteractionTypeBlockActions:
		for _, a := range cb.ActionCallback.BlockActions {
			if a == nil || (a.ActionID != ActionApprove && a.ActionID != ActionDeny && a.ActionID != ActionStop) {
				continue
			}
			h.decide(ctx, cb, a)
			return nil, nil
		}
		return nil, nil
	case slack.InteractionTypeViewSubmission:
		if cb.View.CallbackID != FormCallbackID {
			return nil, nil
		}
		return h.submitForm(cb), nil
	}
	return nil, nil
}

// decide applies an Approve, Deny or Stop click and sends the clicker an
// ephemeral answer in the background. The engine has stored the effect
// when it returns, so the click may be acknowledged then.
//
// All the click's store work shares one deadline, ClickBudget after the
// click arrived: each store call has its own bound too, but a click makes
// several in a row. When the deadline ends a write, the store tells
// whether nothing was recorded or whether it may have been, and the
// clicker is told as much.
func (h *Handler) decide(ctx context.Context, cb *slack.InteractionCallback, a *slack.BlockAction) {
	key := cb.TriggerID
	if key == "" && a.ActionTs != "" {
		key = "click:" + cb.User.ID + ":" + a.ActionTs
	}
	ctx, cancel := h.deliveryContext(ctx)
	defer cancel()
	var (
		res approval.Result
		err error
	)
	// The engine acts only if this message is the request's card.
	from := approval.Card{Channel: firstNonEmpty(cb.Container.ChannelID, cb.Channel.ID), TS: firstNonEmpty(cb.Container.MessageTs, cb.Message.Timestamp)}
	switch a.ActionID {
	case ActionApprove:
		res, err = h.engine.Approve(ctx, key, a.Value, cb.User.ID, from)
	case ActionStop:
		res, err = h.engine.Stop(ctx, key, a.Value, cb.User.ID, &from)
	default:
		res, err = h.engine.Deny(ctx, key, a.Value, cb.User.ID, from)
	}
	msg := Ephemeral(res.Message)
	if err != nil {
		msg = h.errorReply(timedOut(ctx, err))
	}
	if msg.Text == "" {
		return
	}
	to := replyTo{responseURL: cb.ResponseURL, channel: firstNonEmpty(cb.Channel.ID, cb.Container.ChannelID), user: cb.User.ID}
	h.deliver(to, msg)
}

// submitForm validates a submitted request form. Errors are shown in the
// form; a valid request is filed in the background like a typed one.
func (h *Handler) submitForm(cb *slack.InteractionCallback) any {
	cmd, channel, responseURL, errs := ParseRequestForm(&cb.View)
	if len(errs) > 0 {
		return slack.NewErrorsViewSubmissionResponse(errs)
	}
	key := cb.TriggerID
	if key == "" && cb.View.ID != "" && cb.View.Hash != "" {
		key = "view:" + cb.View.ID + ":" + cb.View.Hash
	}
	in := approval.CreateInput{
		Key: key, Requester: cb.User.ID, Channel: channel, Reason: cmd.Reason,
		Instances: cmd.Instances, Selector: cmd.Selector, StopType: cmd.StopType, Region: cmd.Region,
	}
	to := replyTo{responseURL: responseURL, channel: channel, user: cb.User.ID}
	if !h.spawn(func(ctx context.Context) { h.create(ctx, in, to, false) }) {
		return slack.NewErrorsViewSubmissionResponse(map[string]string{BlockInstances: shuttingDown})
	}
	return nil
}

// timedOut gives err, an error without a kind that the click's deadline
// caused, the words it deserves: the stores return such errors only for
// work they had not begun to write (a read, or a write refused before it
// was queued), so nothing was recorded. Errors with a kind already say
// what happened.
func timedOut(ctx context.Context, err error) error {
	if approval.ErrorKind(err) == approval.Internal && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return approval.NotRecorded(err)
	}
	return err
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
