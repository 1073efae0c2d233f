package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"golang.org/x/sync/singleflight"

	"rebootbot/approval"
)

// SlackConfig configures the Web API client.
type SlackConfig struct {
	Token      string       // bot token (xoxb-…); never logged
	APIURL     string       // base URL of the Web API; "" means https://slack.com/api/
	HTTPClient *http.Client // nil: a client with a 15 s timeout
	Logger     *slog.Logger // nil: discard
	Metrics    Metrics      // nil: not counted
	// Clock stamps the cards' relative times and ages the group cache; nil
	// means the system clock. Give it the engine's clock: requests created
	// before this client (before a restart) are told apart by it.
	Clock approval.Clock

	// GroupTTL is how long a user group's members are trusted (default
	// 60 s); after that they are looked up again, and a lookup that fails
	// leaves the group unknown.
	GroupTTL time.Duration
	// GroupTimeout bounds one group lookup, retries included (default
	// approval.GroupLookupTimeout), so a click is still answered within
	// Slack's 3 seconds.
	GroupTimeout time.Duration
	// Attempts is how many times a call is tried when Slack answers 429,
	// 5xx or the network fails (default 4); Backoff is the first wait after
	// a 5xx or network error (default 250 ms), doubled each time.
	Attempts int
	Backoff  time.Duration
}

// Slack calls Slack's Web API. It implements approval.Notifier and
// approval.Groups, and carries the replies the handlers send.
type Slack struct {
	api      *slack.Client
	token    string
	apiURL   string
	http     *http.Client
	log      *slog.Logger
	metrics  Metrics
	clock    approval.Clock
	attempts int
	backoff  time.Duration
	groupTTL time.Duration
	groupTO  time.Duration
	sleep    func(ctx context.Context, d time.Duration) error
	started  time.Time // when this process's client was made

	lookups singleflight.Group // user-group lookups in flight, by group

	mu         sync.Mutex
	self       Identity // from auth.test; zero until asked
	groups     map[string]groupEntry
	historyOff bool                       // Slack refused a history read
	unsure     map[string]bool            // card:R-1, thread:R-1 — a post may have landed unseen
	reports    map[string]map[string]bool // request → reports known to be in its thread
	paced      map[string]time.Time       // channel → when its next wave message may go
}

type groupEntry struct {
	members []string
	fetched time.Time
}

var (
	_ approval.Notifier = (*Slack)(nil)
	_ approval.Groups   = (*Slack)(nil)
)

// NewSlack returns a Web API client for cfg.
func NewSlack(cfg SlackConfig) *Slack {
	s := &Slack{
		token:    cfg.Token,
		apiURL:   cfg.APIURL,
		http:     cfg.HTTPClient,
		log:      cfg.Logger,
		metrics:  cfg.Metrics,
		clock:    cfg.Clock,
		attempts: cfg.Attempts,
		backoff:  cfg.Backoff,
		groupTTL: cfg.GroupTTL,
		groupTO:  cfg.GroupTimeout,
		sleep:    sleepCtx,
		groups:   map[string]groupEntry{},
		unsure:   map[string]bool{},
		reports:  map[string]map[string]bool{},
		paced:    map[string]time.Time{},
	}
	if s.apiURL == "" {
		s.apiURL = slack.APIURL
	}
	if !strings.HasSuffix(s.apiURL, "/") {
		s.apiURL += "/"
	}
	if s.http == nil {
		s.http = &http.Client{Timeout: 15 * time.Second, Transport: slackTransport()}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.metrics == nil {
		s.metrics = noMetrics{}
	}
	if s.clock == nil {
		s.clock = approval.SystemClock{}
	}
	if s.attempts <= 0 {
		s.attempts = 4
	}
	if s.backoff <= 0 {
		s.backoff = 250 * time.Millisecond
	}
	if s.groupTTL <= 0 {
		s.groupTTL = 60 * time.Second
	}
	if s.groupTO <= 0 {
		s.groupTO = approval.GroupLookupTimeout
	}
	s.started = s.clock.Now()
	s.api = slack.New(s.token, slack.OptionAPIURL(s.apiURL), slack.OptionHTTPClient(s.http),
		slack.OptionLog(slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)))
	return s
}

// slackIdleConns is how many idle connections to each Slack host are kept
// for reuse. Go's default keeps two, so a burst of card updates, thread
// reports and click answers would open (and on slack.com, handshake) a
// new connection for almost every call and close it again.
const slackIdleConns = 64

// slackTransport is Go's default transport keeping slackIdleConns idle
// connections per host.
func slackTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = slackIdleConns
	t.MaxIdleConns = max(t.MaxIdleConns, 2*slackIdleConns)
	return t
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// cantPost is the answer when Slack will not let the bot post the card.
const cantPost = "I can't post in this channel: invite me with /invite @rebootbot and try again."

// lateCardAge is how old a request may be when its card is posted
// without looking for it first. Past it, another replica's engine may have
// posted the card: with replicas, the leader posts the cards that their
// creators have not stored a few seconds after creating the request, and
// under load the creator's card can be on its way, or posted and not yet
// stored, by then.
const lateCardAge = 5 * time.Second

// PostCard posts r's approval card in r.Channel. If an earlier attempt
// may have landed (it failed, r predates this process, or r is older than
// lateCardAge), it first looks for that card and returns it instead of
// posting a second one.
func (s *Slack) PostCard(ctx context.Context, r *approval.Request) (approval.Card, error) {
	key := "card:" + r.ID
	late := !r.CreatedAt.IsZero() && s.clock.Now().Sub(r.CreatedAt) > lateCardAge
	if late || s.mayHavePosted(key, r.CreatedAt) {
		card, found, err := s.findCard(ctx, r)
		if err != nil {
			return approval.Card{}, unavailable(err, "Slack could not be asked whether the card is posted; try again in a moment.")
		}
		if found {
			s.setUnsure(key, false)
			s.metrics.CardPosted()
			return card, nil
		}
	}
	text, blocks := RenderCard(r, s.clock.Now())
	var ch, ts string
	landed := func(ctx context.Context) (bool, error) {
		card, found, err := s.findCard(ctx, r)
		ch, ts = card.Channel, card.TS
		return found, err
	}
	err := s.notice(ctx, "chat.postMessage", landed, func(ctx context.Context) error {
		var err error
		ch, ts, err = s.api.PostMessageContext(ctx, r.Channel, slack.MsgOptionText(text, false),
			slack.MsgOptionBlocks(blocks...), slack.MsgOptionMetadata(cardMetadata(r)),
			slack.MsgOptionDisableLinkUnfurl(), slack.MsgOptionDisableMediaUnfurl())
		return err
	})
	if err != nil {
		switch code := slackErrorCode(err); {
		case code == "not_in_channel" || code == "channel_not_found" || code == "is_archived":
			return approval.Card{}, &approval.Error{Kind: approval.Forbidden, Message: cantPost, Err: err}
		case permanent(err):
			return approval.Card{}, gone(err, "the approval card")
		}
		s.setUnsure(key, mayHaveLanded(err))
		return approval.Card{}, unavailable(err, "Slack did not take the approval card; try again in a moment.")
	}
	s.setUnsure(key, false)
	s.metrics.CardPosted()
	if ch == "" {
		ch = r.Channel
	}
	return approval.Card{Channel: ch, TS: ts}, nil
}

// UpdateCard makes r's card show r as it is now. When Slack answers that
// the card can never be updated (deleted, its channel archived, the token
// refused) it tells the requester where it can and returns a Gone error.
func (s *Slack) UpdateCard(ctx context.Context, r *approval.Request) error {
	if r.Card.TS == "" || r.Card.Channel == "" {
		return fmt.Errorf("update card of %s: it has no card", r.ID)
	}
	text, blocks := RenderCard(r, s.clock.Now())
	err := s.notice(ctx, "chat.update", nil, func(ctx context.Context) error {
		_, _, _, err := s.api.UpdateMessageContext(ctx, r.Card.Channel, r.Card.TS, slack.MsgOptionText(text, false),
			slack.MsgOptionBlocks(blocks...), slack.MsgOptionMetadata(cardMetadata(r)))
		return err
	})
	if err != nil {
		if permanent(err) {
			s.tellCardLost(ctx, r, err)
			return gone(err, "the card update")
		}
		return unavailable(err, "Slack did not take the card update.")
	}
	return nil
}

// Report posts one progress message in the thread of r's card, unless it
// is there already from an attempt whose answer was lost.
func (s *Slack) Report(ctx context.Context, r *approval.Request, rep approval.Report) error {
	if r.Card.TS == "" || r.Card.Channel == "" {
		return fmt.Errorf("report on %s: it has no card", r.ID)
	}
	key := reportKey(rep)
	done, err := s.reported(ctx, r, key)
	if err != nil {
		return unavailable(err, "Slack could not be asked whether the report is posted.")
	}
	if done {
		return nil
	}
	text := RenderReport(r, rep)
	if rep.Kind == approval.ReportWave {
		if err := s.pace(ctx, r.Card.Channel); err != nil {
			return unavailable(err, "The wave message waited its turn past its deadline.")
		}
	}
	landed := func(ctx context.Context) (bool, error) {
		found, err := s.threadReports(ctx, r)
		return found[key], err
	}
	err = s.notice(ctx, "chat.postMessage", landed, func(ctx context.Context) error {
		_, _, err := s.api.PostMessageContext(ctx, r.Card.Channel, slack.MsgOptionText(text, false),
			slack.MsgOptionTS(r.Card.TS), slack.MsgOptionMetadata(reportMetadata(r, key)),
			slack.MsgOptionDisableLinkUnfurl(), slack.MsgOptionDisableMediaUnfurl())
		return err
	})
	s.noteReport(r.ID, key, rep.Kind == approval.ReportFinished, err)
	if err != nil {
		if permanent(err) {
			return gone(err, "the card's thread")
		}
		return unavailable(err, "Slack did not take the progress report.")
	}
	return nil
}

// reported reports whether report key is already in r's thread, reading
// the thread once when an earlier post may have landed unseen.
func (s *Slack) reported(ctx context.Context, r *approval.Request, key string) (bool, error) {
	s.mu.Lock()
	known, cached := s.reports[r.ID]
	done := known[key]
	s.mu.Unlock()
	if cached {
		return done, nil
	}
	if !s.mayHavePosted("thread:"+r.ID, r.StartedAt) {
		return false, nil
	}
	found, err := s.threadReports(ctx, r)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reports[r.ID] = found
	delete(s.unsure, "thread:"+r.ID)
	return found[key], nil
}

// noteReport records how posting report key of request id went.
// wavePace is the least time between two wave messages in one channel, so
// that many rolling requests together never flood it.
const wavePace = time.Second

// pace waits until channel may take another wave message, and books the
// next turn. It keeps to real time, not the engine's clock: the limit is
// Slack's.
func (s *Slack) pace(ctx context.Context, channel string) error {
	s.mu.Lock()
	now := time.Now()
	at := now
	if next := s.paced[channel]; next.After(now) {
		at = next
	}
	s.paced[channel] = at.Add(wavePace)
	s.mu.Unlock()
	if d := at.Sub(now); d > 0 {
		return s.sleep(ctx, d)
	}
	return nil
}

func (s *Slack) noteReport(id, key string, last bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err != nil:
		delete(s.reports, id)
		if mayHaveLanded(err) {
			s.unsure["thread:"+id] = true
		}
	case last:
		delete(s.reports, id)
		delete(s.unsure, "thread:"+id)
	default:
		if known := s.reports[id]; known != nil {
			known[key] = true
		}
	}
}

// Members returns the user IDs in user group id. An answer younger than
// GroupTTL comes from the cache; otherwise Slack is asked, once for all
// the callers that want the same group at the same moment. When Slack
// cannot answer, the error is returned rather than an older answer: the
// list decides who may approve reboots, and someone removed from the group
// must not keep counting.
func (s *Slack) Members(ctx context.Context, group string) ([]string, error) {
	s.mu.Lock()
	e, ok := s.groups[group]
	s.mu.Unlock()
	if ok && s.clock.Now().Sub(e.fetched) < s.groupTTL {
		return e.members, nil
	}
	answer := s.lookups.DoChan(group, func() (any, error) {
		// The lookup is shared, so it must not end when the caller that
		// started it gives up; GroupTimeout bounds it instead.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.groupTO)
		defer cancel()
		fetched := s.clock.Now()
		var members []string
		err := s.do(ctx, "usergroups.users.list", func(ctx context.Context) error {
			var err error
			members, err = s.api.GetUserGroupMembersContext(ctx, group)
			return err
		})
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.groups[group] = groupEntry{members: members, fetched: fetched}
		s.mu.Unlock()
		return members, nil
	})
	select {
	case res := <-answer:
		if res.Err != nil {
			return nil, fmt.Errorf("members of user group %s: %w", group, res.Err)
		}
		return res.Val.([]string), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("members of user group %s: %w", group, ctx.Err())
	}
}

// OpenView opens a modal for the user whose action gave triggerID.
func (s *Slack) OpenView(ctx context.Context, triggerID string, view slack.ModalViewRequest) error {
	return s.do(ctx, "views.open", func(ctx context.Context) error {
		_, err := s.api.OpenViewContext(ctx, triggerID, view)
		return err
	})
}

// PostEphemeral shows text to user alone in channel.
func (s *Slack) PostEphemeral(ctx context.Context, channel, user, text string) error {
	return s.do(ctx, "chat.postEphemeral", func(ctx context.Context) error {
		_, err := s.api.PostEphemeralContext(ctx, channel, user, slack.MsgOptionText(text, false))
		return err
	})
}

// do runs one Web API call with retries: 429 after its Retry-After, 5xx and
// network errors with doubling backoff, Slack's transient error codes too;
// at most s.attempts tries, all bounded by ctx. Every try is counted.
func (s *Slack) do(ctx context.Context, method string, call func(context.Context) error) error {
	return s.try(ctx, method, nil, call)
}

// try is do for calls that create something: before retrying a failure
// that may have taken effect anyway (a 5xx, a timeout), it asks landed
// whether it did, and stops if so. landed's own error ends the retries
// with the call's error: better to let the caller come back than to post
// twice.
func (s *Slack) try(ctx context.Context, method string, landed func(context.Context) (bool, error), call func(context.Context) error) error {
	delay := s.backoff
	for attempt := 1; ; attempt++ {
		err := call(ctx)
		result, retry, wait := classify(err)
		s.metrics.SlackCall(method, result)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("slack %s: %w", method, errors.Join(err, ctx.Err()))
		}
		if !retry || attempt >= s.attempts {
			s.log.Warn("slack call failed", "method", method, "result", result, "attempt", attempt, "err", err)
			return fmt.Errorf("slack %s: %w", method, err)
		}
		if wait <= 0 {
			wait = delay
			delay *= 2
		}
		s.log.Info("slack call will be retried", "method", method, "result", result, "attempt", attempt, "wait", wait.String())
		if err := s.sleep(ctx, wait); err != nil {
			return fmt.Errorf("slack %s: waiting to retry: %w", method, err)
		}
		if landed != nil && mayHaveLanded(err) {
			ok, lerr := landed(ctx)
			if lerr != nil {
				return fmt.Errorf("slack %s: %w", method, err)
			}
			if ok {
				s.log.Info("slack call had taken effect despite the error", "method", method, "result", result)
				return nil
			}
		}
	}
}

// mayHaveLanded reports whether a failed call may have taken effect: Slack
// answered 5xx or a transient error, or the connection broke after the
// request could have been sent. A refused connection or a 429 did nothing.
func mayHaveLanded(err error) bool {
	if err == nil {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return false
	}
	result, retry, _ := classify(err)
	return retry && result != "ratelimited" || result == "timeout"
}

// classify names a call's result for metrics and says whether to retry and
// how long to wait (0: the backoff).
func classify(err error) (result string, retry bool, wait time.Duration) {
	if err == nil {
		return "ok", false, 0
	}
	var (
		rl   *slack.RateLimitedError
		sc   slack.StatusCodeError
		se   slack.SlackErrorResponse
		nerr net.Error
	)
	switch {
	case errors.As(err, &rl):
		return "ratelimited", true, max(rl.RetryAfter, time.Millisecond)
	case errors.As(err, &sc):
		return "http_" + strconv.Itoa(sc.Code), sc.Code >= 500, 0
	case errors.As(err, &se):
		switch se.Err {
		case "ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout":
			return se.Err, true, 0
		}
		return truncate(se.Err, 60), false, 0
	case errors.Is(err, context.Canceled):
		return "canceled", false, 0
	case errors.Is(err, context.DeadlineExceeded):
		// The HTTP client's own per-attempt timeout; the callers stop
		// retrying when their context ends, so this is safe to retry.
		return "timeout", true, 0
	case errors.As(err, &nerr):
		return "network", true, 0
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return "network", true, 0
	}
	return "error", false, 0
}

// slackErrorCode returns Slack's error code in err ("not_in_channel"), or "".
func slackErrorCode(err error) string {
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		return se.Err
	}
	return ""
}

// unavailable wraps transient failures as an Unavailable *approval.Error
// with msg for the user; other errors are returned as they are.
func unavailable(err error, msg string) error {
	if _, retry, _ := classify(err); retry || errors.Is(err, context.DeadlineExceeded) {
		return &approval.Error{Kind: approval.Unavailable, Message: msg, Err: err}
	}
	return err
}
