package bot

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"rebootbot/approval"
)

// Command is one parsed /reboot invocation: one of HelpCommand, FormCommand,
// CreateCommand, StatusCommand, CancelCommand, StopCommand, PendingCommand,
// AuditCommand.
type Command interface{ command() }

// HelpCommand asks for the usage.
type HelpCommand struct{}

// FormCommand is a bare /reboot: it opens the request form.
type FormCommand struct{}

// CreateCommand asks for a reboot.
type CreateCommand struct {
	Instances []string          // valid IDs in the order typed, duplicates dropped
	Selector  approval.Selector // tag:, name:, ip: and zone: words
	StopType  approval.StopType
	Region    string // "" for the policy's default
	Reason    string // as the user typed it, Slack's escaping undone
	Waves     approval.WaveOptions
}

// StatusCommand shows one request: its card, or with Page one page of
// its instances.
type StatusCommand struct {
	RequestID string
	Page      int // 0: the card
}

// CancelCommand withdraws a pending request.
type CancelCommand struct{ RequestID string }

// StopCommand stops a rolling request after its running wave.
type StopCommand struct{ RequestID string }

// PendingCommand lists the requests waiting for approval.
type PendingCommand struct{}

// AuditCommand looks the audit log up by request, instance or user; exactly
// one of RequestID, Instance and User is set.
type AuditCommand struct {
	RequestID string
	Instance  string
	User      string
	Limit     int
}

func (HelpCommand) command()    {}
func (FormCommand) command()    {}
func (CreateCommand) command()  {}
func (StatusCommand) command()  {}
func (CancelCommand) command()  {}
func (StopCommand) command()    {}
func (PendingCommand) command() {}
func (AuditCommand) command()   {}

// Limits of the grammar.
const (
	DefaultAuditLimit = 10
	MaxAuditLimit     = 50
	// maxCommandInstances bounds the IDs the parser accepts; larger sets
	// are selected by tag, name, address or zone. The engine refuses
	// anything over the policy's max_instances and audits it.
	maxCommandInstances = 1000
)

// Usage is the short grammar shown with every syntax error.
const Usage = "Usage:\n" +
	"`/reboot ins-xxxxxxxx [ins-… …] [--hard | --soft-first] [--region REGION] reason…`\n" +
	"`/reboot [tag:KEY=VALUE …] [name:PATTERN …] [ip:ADDRESS …] [zone:ZONE …] [ins-… …] [options] reason…`\n" +
	"options: `--wave N|N%` `--pause DURATION` `--max-failures N|N%` `--by-zone` `--hard | --soft-first` `--region REGION`\n" +
	"`/reboot` (opens a form) · `/reboot help` · `/reboot status R-42 [--page N]` · `/reboot cancel R-42` · `/reboot stop R-42` · `/reboot pending`\n" +
	"`/reboot audit R-42 | ins-xxxxxxxx | @person [--limit N]`"

// Help is the answer to /reboot help.
const Help = "*rebootbot* reboots Tencent Cloud CVM instances once the policy's approvers agree.\n\n" +
	"• `/reboot ins-1a2b3c4d ins-5e6f7a8b kernel update` asks for a graceful (SOFT) reboot; the reason is required.\n" +
	"• `--hard` cuts power at once, `--soft-first` tries gracefully then cuts power; both may need more approvals.\n" +
	"• `--region ap-shanghai` picks the region (otherwise the default one).\n" +
	"• Select instances by what they are: `tag:role=web`, `name:web-*` (a trailing `*` matches the start), `ip:10.0.1.12` " +
	"(private or public), `zone:ap-guangzhou-3`. Different kinds narrow (`tag:role=web zone:ap-guangzhou-3`), " +
	"repeats of one kind widen (`tag:role=web tag:role=api`), IDs are added. Only RUNNING instances are selected; " +
	"the set is frozen when you ask.\n" +
	"• Roll a large set in waves: `--wave 10` (or `--wave 10%`) instances at a time, `--pause 5m` between waves, " +
	"`--max-failures 2` (or `2%`) failures allowed before no further wave starts (default 0), `--by-zone` to never mix zones in a wave.\n" +
	"• `/reboot stop R-42` (or the card's Stop button) lets the running wave finish and starts no later one.\n" +
	"• `/reboot` alone opens a form with the same fields.\n" +
	"• `/reboot status R-42` shows a request; `/reboot cancel R-42` withdraws your pending request.\n" +
	"• `/reboot pending` lists requests waiting for approval.\n" +
	"• `/reboot audit R-42`, `/reboot audit ins-1a2b3c4d` or `/reboot audit @person` shows the latest audit events " +
	"(10 by default, `--limit 50` at most).\n\n" + Usage

// ParseCommand parses the text of a /reboot command as Slack sends it (with
// its &amp; &lt; &gt; escaping and <…> markup). A syntax error is an
// *approval.Error of kind Invalid whose message names what is wrong.
func ParseCommand(text string) (Command, error) {
	toks := tokenize(text)
	if len(toks) == 0 {
		return FormCommand{}, nil
	}
	switch strings.ToLower(toks[0].text) {
	case "help", "-h", "--help", "—help", "–help":
		if len(toks) > 1 {
			return nil, invalid("`help` takes nothing after it.")
		}
		return HelpCommand{}, nil
	case "status":
		return parseStatus(toks[1:])
	case "cancel":
		id, err := requestIDArg("cancel", toks[1:])
		if err != nil {
			return nil, err
		}
		return CancelCommand{RequestID: id}, nil
	case "stop":
		id, err := requestIDArg("stop", toks[1:])
		if err != nil {
			return nil, err
		}
		return StopCommand{RequestID: id}, nil
	case "pending":
		if len(toks) > 1 {
			return nil, invalid("`pending` takes nothing after it.")
		}
		return PendingCommand{}, nil
	case "audit":
		return parseAudit(toks[1:])
	}
	return parseCreate(text, toks)
}

// token is one whitespace-separated word of the raw command text; a <…>
// markup is never split. start and end index the raw text.
type token struct {
	text       string
	start, end int
}

func tokenize(s string) []token {
	var toks []token
	start := -1
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if isSpace(r) {
			if start >= 0 {
				toks = append(toks, token{s[start:i], start, i})
				start = -1
			}
			i += size
			continue
		}
		if start < 0 {
			start = i
		}
		if r == '<' {
			if j := strings.IndexByte(s[i:], '>'); j > 0 {
				i += j + 1
				continue
			}
		}
		i += size
	}
	if start >= 0 {
		toks = append(toks, token{s[start:], start, len(s)})
	}
	return toks
}

func isSpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r', '\v', '\f', 0x85, 0xA0, 0x2007, 0x202F, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200A
}

// option returns the name of an option word (--hard, —hard, –hard) and
// whether w is one. A dash alone, or dashes followed by no letter, is
// punctuation and belongs to the reason.
func option(w string) (name, value string, ok bool) {
	var rest string
	switch {
	case strings.HasPrefix(w, "--"):
		rest = w[2:]
	case strings.HasPrefix(w, "—"):
		rest = strings.TrimPrefix(w, "—")
	case strings.HasPrefix(w, "–"):
		rest = strings.TrimPrefix(w, "–")
	default:
		return "", "", false
	}
	if rest == "" || !(rest[0] >= 'a' && rest[0] <= 'z' || rest[0] >= 'A' && rest[0] <= 'Z') {
		return "", "", false
	}
	name, value, _ = strings.Cut(rest, "=")
	// Some clients turn the inner hyphen of soft-first into a dash as well.
	name = strings.NewReplacer("—", "-", "–", "-").Replace(strings.ToLower(name))
	return name, value, true
}

func parseCreate(raw string, toks []token) (Command, error) {
	var (
		c       = CreateCommand{StopType: approval.Soft}
		seen    = map[string]bool{}
		stopSet string
		regions int
		reason  []string // verbatim runs of reason words
		runFrom = -1     // start of the current run of reason words
		runTo   int
	)
	flush := func() {
		if runFrom >= 0 {
			reason = append(reason, raw[runFrom:runTo])
			runFrom = -1
		}
	}
	for i := 0; i < len(toks); i++ {
		w := toks[i].text
		if name, value, ok := option(w); ok {
			flush()
			switch name {
			case "hard", "soft-first", "softfirst", "soft_first":
				st := approval.Hard
				if name != "hard" {
					st = approval.SoftFirst
				}
				if stopSet != "" && st != c.StopType {
					return nil, invalid("Choose one of `--hard` and `--soft-first`, not both.")
				}
				if value != "" {
					return nil, invalid(fmt.Sprintf("`--%s` takes no value.", name))
				}
				stopSet, c.StopType = name, st
			case "soft":
				if stopSet != "" && c.StopType != approval.Soft {
					return nil, invalid("Choose one stop type: `--soft` (the default), `--hard` or `--soft-first`.")
				}
				stopSet = name
			case "wave", "pause", "max-failures":
				if value == "" {
					if i+1 >= len(toks) {
						return nil, invalid(waveUsage(name))
					}
					i++
					value = toks[i].text
				}
				if err := setWaveOption(&c.Waves, name, Unescape(value)); err != nil {
					return nil, err
				}
			case "by-zone":
				if value != "" {
					return nil, invalid("`--by-zone` takes no value.")
				}
				c.Waves.ByZone = true
			case "region":
				if value == "" {
					if i+1 >= len(toks) {
						return nil, invalid("`--region` needs a region name, for example `--region ap-shanghai`.")
					}
					i++
					value = toks[i].text
					if _, _, isOpt := option(value); isOpt {
						return nil, invalid("`--region` needs a region name, for example `--region ap-shanghai`.")
					}
				}
				region := Unescape(value)
				if !approval.ValidRegion(region) {
					return nil, invalid(fmt.Sprintf("`%s` is not a region name (for example `ap-guangzhou`).", escapeText(truncate(oneLine(region), 40))))
				}
				if regions > 0 && region != c.Region {
					return nil, invalid("Give `--region` once; a request covers one region.")
				}
				regions++
				c.Region = region
			default:
				return nil, invalid(fmt.Sprintf("Unknown option `%s`. Options are `--hard`, `--soft-first`, `--region REGION`, `--wave N|N%%`, `--pause DURATION`, `--max-failures N|N%%` and `--by-zone`.", escapeText(truncate(oneLine(Unescape(w)), 40))))
			}
			continue
		}
		if ids, ok, err := instanceWord(w); ok {
			if err != nil {
				return nil, err
			}
			flush()
			for _, id := range ids {
				if !seen[id] {
					seen[id] = true
					c.Instances = append(c.Instances, id)
				}
			}
			if len(c.Instances) > maxCommandInstances {
				return nil, invalid(fmt.Sprintf("That is more than %d instance IDs; select larger sets with `tag:`, `name:`, `ip:` or `zone:`.", maxCommandInstances))
			}
			continue
		}
		if ok, err := c.Selector.Add(Unescape(w)); ok {
			if err != nil {
				return nil, selectorInvalid(err)
			}
			flush()
			continue
		}
		if runFrom < 0 {
			runFrom = toks[i].start
		}
		runTo = toks[i].end
	}
	flush()
	if len(c.Instances) == 0 && c.Selector.Empty() {
		if _, _, isOpt := option(toks[0].text); !isOpt {
			return nil, invalid(fmt.Sprintf("`%s` is not a /reboot command, and no instance ID (`ins-` and 8 letters or digits) or selector (`tag:role=web`) was given.", escapeText(truncate(oneLine(Unescape(toks[0].text)), 40))))
		}
		return nil, invalid("Name at least one instance or select some, for example `/reboot ins-1a2b3c4d kernel update` or `/reboot tag:role=web kernel update`.")
	}
	c.Reason = strings.TrimSpace(Unescape(strings.Join(reason, " ")))
	if c.Reason == "" {
		example := strings.Join(c.Selector.Words(), " ")
		if len(c.Instances) > 0 {
			example = c.Instances[0]
		}
		return nil, invalid("A reason is required, for example `/reboot " + escapeText(truncate(oneLine(example), 80)) + " kernel update`.")
	}
	if n := utf8.RuneCountInString(c.Reason); n > approval.MaxReasonLength {
		return nil, invalid(fmt.Sprintf("The reason is %d characters long; keep it under %d.", n, approval.MaxReasonLength))
	}
	return c, nil
}

// instanceWord reports whether w is meant as instance IDs (it starts with
// ins-); it may list several separated by commas. A word that starts with
// ins- but is not a valid ID is an error naming it.
func instanceWord(w string) (ids []string, ok bool, err error) {
	if len(w) < 4 || !strings.EqualFold(w[:4], "ins-") {
		return nil, false, nil
	}
	for _, part := range strings.Split(strings.TrimRight(w, ",;."), ",") {
		if part == "" {
			continue
		}
		if !approval.ValidInstanceID(part) {
			return nil, true, invalid(fmt.Sprintf("`%s` is not a valid instance ID: IDs are `ins-` followed by 8 lowercase letters or digits.", escapeText(truncate(oneLine(Unescape(part)), 40))))
		}
		ids = append(ids, part)
	}
	return ids, true, nil
}

func requestIDArg(verb string, args []token) (string, error) {
	example := fmt.Sprintf("`/reboot %s R-42`", verb)
	if len(args) == 0 {
		return "", invalid(fmt.Sprintf("`%s` needs a request ID, for example %s.", verb, example))
	}
	if len(args) > 1 {
		return "", invalid(fmt.Sprintf("`%s` takes one request ID, for example %s.", verb, example))
	}
	n, ok := approval.ParseRequestID(args[0].text)
	if !ok {
		return "", invalid(fmt.Sprintf("`%s` is not a request ID; they look like `R-42`.", escapeText(truncate(oneLine(Unescape(args[0].text)), 40))))
	}
	return approval.FormatRequestID(n), nil
}

// parseStatus reads `status R-42 [--page N]`.
func parseStatus(args []token) (Command, error) {
	var rest []token
	page := 0
	for i := 0; i < len(args); i++ {
		name, value, ok := option(args[i].text)
		if !ok {
			rest = append(rest, args[i])
			continue
		}
		if name != "page" {
			return nil, invalid(fmt.Sprintf("Unknown option `%s` for status; the only one is `--page N`.", escapeText(truncate(oneLine(Unescape(args[i].text)), 40))))
		}
		if value == "" && i+1 < len(args) {
			i++
			value = args[i].text
		}
		n, err := strconv.Atoi(value)
		if err != nil || n < 1 || n > approval.MaxInstancesPerRequest {
			return nil, invalid("`--page` takes a page number, for example `/reboot status R-42 --page 2`.")
		}
		page = n
	}
	id, err := requestIDArg("status", rest)
	if err != nil {
		return nil, err
	}
	return StatusCommand{RequestID: id, Page: page}, nil
}

func parseAudit(args []token) (Command, error) {
	c := AuditCommand{Limit: DefaultAuditLimit}
	targets := 0
	for i := 0; i < len(args); i++ {
		w := args[i].text
		if name, value, ok := option(w); ok {
			if name != "limit" {
				return nil, invalid(fmt.Sprintf("Unknown option `%s` for audit; the only one is `--limit N`.", escapeText(truncate(oneLine(Unescape(w)), 40))))
			}
			if value == "" {
				if i+1 >= len(args) {
					return nil, invalid(fmt.Sprintf("`--limit` needs a number from 1 to %d.", MaxAuditLimit))
				}
				i++
				value = args[i].text
			}
			n, err := strconv.Atoi(value)
			if err != nil || n < 1 || n > MaxAuditLimit {
				return nil, invalid(fmt.Sprintf("`--limit` takes a number from 1 to %d.", MaxAuditLimit))
			}
			c.Limit = n
			continue
		}
		targets++
		if targets > 1 {
			return nil, invalid("`audit` looks up one thing at a time: a request (`R-42`), an instance (`ins-…`) or a person (`@person`).")
		}
		switch {
		case strings.HasPrefix(w, "<@") && strings.HasSuffix(w, ">"):
			id, _, _ := strings.Cut(w[2:len(w)-1], "|")
			if !approval.ValidUserID(id) {
				return nil, invalid("That mention is not a person I can look up.")
			}
			c.User = id
		case strings.HasPrefix(w, "@"):
			return nil, invalid(fmt.Sprintf("I can't tell who `%s` is from the name alone: mention them (type @ and pick the person from the list) or give their user ID (`U…`).", escapeText(truncate(oneLine(Unescape(w)), 40))))
		case strings.HasPrefix(w, "<!subteam^"):
			return nil, invalid("`audit` looks people up one at a time; mention a person, not a group.")
		case approval.ValidUserID(w):
			c.User = w
		case len(w) >= 4 && strings.EqualFold(w[:4], "ins-"):
			if !approval.ValidInstanceID(w) {
				return nil, invalid(fmt.Sprintf("`%s` is not a valid instance ID: IDs are `ins-` followed by 8 lowercase letters or digits.", escapeText(truncate(oneLine(Unescape(w)), 40))))
			}
			c.Instance = w
		default:
			n, ok := approval.ParseRequestID(w)
			if !ok {
				return nil, invalid(fmt.Sprintf("`audit` can't look up `%s`: give a request (`R-42`), an instance (`ins-…`) or a person (`@person`).", escapeText(truncate(oneLine(Unescape(w)), 40))))
			}
			c.RequestID = approval.FormatRequestID(n)
		}
	}
	if targets == 0 {
		return nil, invalid("`audit` needs something to look up: a request (`R-42`), an instance (`ins-…`) or a person (`@person`).")
	}
	return c, nil
}

func invalid(msg string) error { return &approval.Error{Kind: approval.Invalid, Message: msg} }

// selectorInvalid turns a malformed selector word into a syntax error that
// names the word, escaped for Slack.
func selectorInvalid(err error) error {
	var se *approval.SelectorError
	if errors.As(err, &se) {
		return invalid("`" + escapeText(truncate(oneLine(se.Word), 60)) + "` " + se.Problem)
	}
	return invalid(approval.ErrorMessage(err))
}

// waveUsage says what the wave option name takes.
func waveUsage(name string) string {
	switch name {
	case "wave":
		return "`--wave` takes a number of instances or a percentage of them, for example `--wave 10` or `--wave 10%`."
	case "pause":
		return "`--pause` takes a duration of at most 24h, for example `--pause 5m`."
	}
	return "`--max-failures` takes a number of instances or a percentage of them, for example `--max-failures 2` or `--max-failures 5%`."
}

// setWaveOption reads value into the wave option name of o. Giving an
// option twice is an error, unless the values agree.
func setWaveOption(o *approval.WaveOptions, name, value string) error {
	count := func(v string) (int, bool, bool) {
		n, pct := strings.CutSuffix(v, "%")
		i, err := strconv.Atoi(n)
		return i, pct, err == nil && i >= 0 && i <= approval.MaxInstancesPerRequest
	}
	switch name {
	case "wave":
		n, pct, ok := count(value)
		if !ok || n == 0 || pct && n > 100 {
			return invalid(waveUsage(name))
		}
		if o.Size != 0 && (o.Size != n || o.SizePercent != pct) {
			return invalid("Give `--wave` once.")
		}
		o.Size, o.SizePercent = n, pct
	case "pause":
		d, err := time.ParseDuration(value)
		if err != nil || d < 0 || d > approval.MaxWavePause {
			return invalid(waveUsage(name))
		}
		if o.Pause != 0 && o.Pause != d {
			return invalid("Give `--pause` once.")
		}
		o.Pause = d
	default:
		n, pct, ok := count(value)
		if !ok || pct && n > 100 {
			return invalid(waveUsage(name))
		}
		if (o.MaxFailures != 0 || o.FailuresPercent) && (o.MaxFailures != n || o.FailuresPercent != pct) {
			return invalid("Give `--max-failures` once.")
		}
		o.MaxFailures, o.FailuresPercent = n, pct
	}
	return nil
}
