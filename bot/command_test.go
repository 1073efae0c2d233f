package bot

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"rebootbot/approval"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		name string
		text string
		want Command
	}{
		{"Bare", "", FormCommand{}},
		{"Blank", "   \t ", FormCommand{}},
		{"Help", "help", HelpCommand{}},
		{"HelpUpper", "HELP", HelpCommand{}},
		{"Soft", "ins-1a2b3c4d kernel update", CreateCommand{Instances: []string{"ins-1a2b3c4d"}, StopType: approval.Soft, Reason: "kernel update"}},
		{"Several", "ins-1a2b3c4d ins-5e6f7a8b ins-1a2b3c4d stuck", CreateCommand{Instances: []string{"ins-1a2b3c4d", "ins-5e6f7a8b"}, StopType: approval.Soft, Reason: "stuck"}},
		{"CommaList", "ins-1a2b3c4d,ins-5e6f7a8b, stuck", CreateCommand{Instances: []string{"ins-1a2b3c4d", "ins-5e6f7a8b"}, StopType: approval.Soft, Reason: "stuck"}},
		{"Hard", "ins-1a2b3c4d --hard hung", CreateCommand{Instances: []string{"ins-1a2b3c4d"}, StopType: approval.Hard, Reason: "hung"}},
		{"HardEmDash", "ins-1a2b3c4d —hard hung", CreateCommand{Instances: []string{"ins-1a2b3c4d"}, StopType: approval.Hard, Reason: "hung"}},
		{"HardEnDash", "ins-1a2b3c4d –hard hung", CreateCommand{Instances: []string{"ins-1a2b3c4d"}, StopType: approval.Hard, Reason: "hung"}},
		{"SoftFirst", "--soft-first ins-1a2b3c4d hung", CreateCommand{Instances: []string{"ins-1a2b3c4d"}, StopType: approval.SoftFirst, Reason: "hung"}},
		{"SoftFirstEmDash", "ins-1a2b3c4d —soft-first hung", CreateCommand{Instances: []string{"ins-1a2b3c4d"}, StopType: approval.SoftFirst, Reason: "hung"}},
		{"SoftFirstAllDashes", "ins-1a2b3c4d —soft—first hung", CreateCommand{Instances: []string{"ins-1a2b3c4d"}, StopType: approval.SoftFirst, Reason: "hung"}},
		{"Region", "ins-1a2b3c4d --region ap-shanghai hung", CreateCommand{Instances: []string{"ins-1a2b3c4d"}, StopType: approval.Soft, Region: "ap-shanghai", Reason: "hung"}},
		{"RegionEquals", "ins-1a2b3c4d —region=ap-shanghai hung", CreateCommand{Instances: []string{"ins-1a2b3c4d"}, StopType: approval.Soft, Region: "ap-shanghai", Reason: "hung"}},
		{"OptionsAfterReason", "ins-1a2b3c4d disk full --hard", CreateCommand{Instances: []string{"ins-1a2b3c4d"}, StopType: approval.Hard, Reason: "disk full"}},
		{"ReasonKeepsSpacing", "ins-1a2b3c4d see  ticket\nOPS-1", CreateCommand{Instances: []string{"ins-1a2b3c4d"}, StopType: approval.Soft, Reason: "see  ticket\nOPS-1"}},
		{"DashIsPunctuation", "ins-1a2b3c4d stuck — again", CreateCommand{Instances: []string{"ins-1a2b3c4d"}, StopType: approval.Soft, Reason: "stuck — again"}},
		{"EntitiesUndone", "ins-1a2b3c4d R&amp;D says &lt;b&gt; is slow", CreateCommand{Instances: []string{"ins-1a2b3c4d"}, StopType: approval.Soft, Reason: "R&D says <b> is slow"}},
		{"MarkupUndone", "ins-1a2b3c4d <!channel> <@U012AB|ana> asked, see <https://x.example/a|x.example/a>", CreateCommand{Instances: []string{"ins-1a2b3c4d"}, StopType: approval.Soft, Reason: "@channel @ana asked, see x.example/a"}},
		{"SubcommandWordInReason", "ins-1a2b3c4d status check hung", CreateCommand{Instances: []string{"ins-1a2b3c4d"}, StopType: approval.Soft, Reason: "status check hung"}},
		{"Status", "status R-42", StatusCommand{RequestID: "R-42"}},
		{"StatusLower", "Status r-42", StatusCommand{RequestID: "R-42"}},
		{"StatusPage", "status R-42 --page 3", StatusCommand{RequestID: "R-42", Page: 3}},
		{"StatusPageFirst", "status —page=2 R-42", StatusCommand{RequestID: "R-42", Page: 2}},
		{"Cancel", "cancel R-7", CancelCommand{RequestID: "R-7"}},
		{"Pending", "pending", PendingCommand{}},
		{"AuditRequest", "audit R-42", AuditCommand{RequestID: "R-42", Limit: 10}},
		{"AuditInstance", "audit ins-1a2b3c4d --limit 50", AuditCommand{Instance: "ins-1a2b3c4d", Limit: 50}},
		{"AuditMention", "audit <@U012ABCDEF|ana>", AuditCommand{User: "U012ABCDEF", Limit: 10}},
		{"AuditMentionBare", "audit <@U012ABCDEF> —limit=3", AuditCommand{User: "U012ABCDEF", Limit: 3}},
		{"AuditUserID", "audit W012ABCDEF", AuditCommand{User: "W012ABCDEF", Limit: 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCommand(tt.text)
			if err != nil {
				t.Fatalf("ParseCommand(%q) error: %v", tt.text, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseCommand(%q) = %#v, want %#v", tt.text, got, tt.want)
			}
		})
	}
}

func TestParseCommandErrors(t *testing.T) {
	many := make([]string, 1001)
	for i := range many {
		many[i] = fmt.Sprintf("ins-%08d", i)
	}
	tests := []struct {
		name string
		text string
		want string // part of the message
	}{
		{"NoReason", "ins-1a2b3c4d", "reason is required"},
		{"NoReasonWithOptions", "ins-1a2b3c4d --hard", "reason is required"},
		{"NoInstance", "--hard please", "at least one instance"},
		{"UnknownWord", "reboot my box please", "`reboot` is not a /reboot command"},
		{"BadID", "ins-1A2B3C4D hung", "`ins-1A2B3C4D` is not a valid instance ID"},
		{"ShortID", "ins-1a2b hung", "`ins-1a2b` is not a valid instance ID"},
		{"BadIDInList", "ins-1a2b3c4d,ins-x hung", "`ins-x` is not a valid instance ID"},
		{"UpperPrefix", "INS-1a2b3c4d hung", "`INS-1a2b3c4d` is not a valid instance ID"},
		{"HardAndSoftFirst", "ins-1a2b3c4d --hard --soft-first x", "not both"},
		{"UnknownOption", "ins-1a2b3c4d --force x", "Unknown option `--force`"},
		{"RegionMissing", "ins-1a2b3c4d x --region", "needs a region name"},
		{"RegionBad", "ins-1a2b3c4d --region <!channel> x", "is not a region name"},
		{"TwoRegions", "ins-1a2b3c4d --region ap-shanghai --region ap-beijing x", "once"},
		{"ReasonTooLong", "ins-1a2b3c4d " + strings.Repeat("a", 1001), "keep it under 1000"},
		{"TooManyToParse", strings.Join(many, " ") + " x", "more than 1000 instance IDs"},
		{"HelpExtra", "help me", "takes nothing"},
		{"StatusNoID", "status", "needs a request ID"},
		{"StatusBadID", "status 42", "is not a request ID"},
		{"StatusTwo", "status R-1 R-2", "one request ID"},
		{"StatusPageZero", "status R-1 --page 0", "`--page` takes a page number"},
		{"StatusPageMissing", "status R-1 --page", "`--page` takes a page number"},
		{"StatusUnknownOption", "status R-1 --all", "the only one is `--page N`"},
		{"CancelNoID", "cancel", "needs a request ID"},
		{"PendingExtra", "pending all", "takes nothing"},
		{"AuditNothing", "audit", "needs something to look up"},
		{"AuditBareName", "audit @ana", "mention them"},
		{"AuditGroup", "audit <!subteam^S0SRE|@sre>", "not a group"},
		{"AuditTwo", "audit R-1 R-2", "one thing at a time"},
		{"AuditLimitHigh", "audit R-1 --limit 51", "from 1 to 50"},
		{"AuditLimitZero", "audit R-1 --limit 0", "from 1 to 50"},
		{"AuditLimitMissing", "audit R-1 --limit", "from 1 to 50"},
		{"AuditUnknownOption", "audit R-1 --since 1h", "only one is `--limit N`"},
		{"AuditGarbage", "audit yesterday", "can't look up `yesterday`"},
		{"AuditBadInstance", "audit ins-zz", "not a valid instance ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCommand(tt.text)
			if err == nil {
				t.Fatalf("ParseCommand(%q) = %#v, want an error", truncate(tt.text, 60), got)
			}
			if k := approval.ErrorKind(err); k != approval.Invalid {
				t.Errorf("error kind = %s, want %s", k, approval.Invalid)
			}
			if msg := approval.ErrorMessage(err); !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not contain %q", msg, tt.want)
			}
		})
	}
}

// TestParseCommandNeverPingsInErrors checks that user text echoed in an
// error message cannot mention anyone.
func TestParseCommandNeverPingsInErrors(t *testing.T) {
	for _, text := range []string{
		"<!channel> now",
		"ins-<!here>x hung",
		"ins-1a2b3c4d --x<!channel> x",
		"status <@U012ABCDEF>",
		"audit <!everyone>",
		"ins-1a2b3c4d --region &lt;!channel&gt; x",
	} {
		_, err := ParseCommand(text)
		if err == nil {
			t.Errorf("ParseCommand(%q) accepted it", text)
			continue
		}
		if msg := approval.ErrorMessage(err); strings.ContainsAny(msg, "<>") {
			t.Errorf("ParseCommand(%q) error %q carries markup", text, msg)
		}
	}
}

func TestParseCommandHundredInstances(t *testing.T) {
	ids := make([]string, 101)
	for i := range ids {
		ids[i] = fmt.Sprintf("ins-%08d", i)
	}
	got, err := ParseCommand(strings.Join(ids, " ") + " fleet patch")
	if err != nil {
		t.Fatal(err)
	}
	// The engine refuses more than the policy's maximum and audits it.
	if n := len(got.(CreateCommand).Instances); n != 101 {
		t.Fatalf("got %d instances, want 101", n)
	}
}

func TestUnescape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"a &amp; b", "a & b"},
		{"&lt;!channel&gt;", "<!channel>"},
		{"&amp;lt;", "&lt;"},
		{"<@U123>", "@U123"},
		{"<@U123|ana>", "@ana"},
		{"<#C123|general>", "#general"},
		{"<#C123>", "#C123"},
		{"<!here>", "@here"},
		{"<!channel>", "@channel"},
		{"<!everyone|everyone>", "@everyone"},
		{"<!subteam^S123|@sre>", "@sre"},
		{"<!subteam^S123>", "@S123"},
		{"<!date^1392734382^{date}|Feb 18>", "Feb 18"},
		{"<https://example.com>", "https://example.com"},
		{"<https://example.com/?a=1&amp;b=2>", "https://example.com/?a=1&b=2"},
		{"<https://example.com|example.com>", "example.com"},
		{"<mailto:a@b.example|a@b.example>", "a@b.example"},
		{"unclosed <@U1", "unclosed <@U1"},
	}
	for _, tt := range tests {
		if got := Unescape(tt.in); got != tt.want {
			t.Errorf("Unescape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEscapeText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"<!channel>", "&lt;!channel&gt;"},
		{"<@U123|ana>", "&lt;@U123|ana&gt;"},
		{"R&D", "R&amp;D"},
		{"```code```", "ˋˋˋcodeˋˋˋ"},
	}
	for _, tt := range tests {
		if got := escapeText(tt.in); got != tt.want {
			t.Errorf("escapeText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"", "help", "ins-1a2b3c4d x", "audit <@U1|a> --limit 5", "<", "&amp;<!", "ins-,,", "—"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cmd, err := ParseCommand(s)
		if (cmd == nil) == (err == nil) {
			t.Fatalf("ParseCommand(%q) = %v, %v: want exactly one of them", s, cmd, err)
		}
		if c, ok := cmd.(CreateCommand); ok {
			if c.Reason == "" || len(c.Instances) == 0 {
				t.Fatalf("ParseCommand(%q) = %#v: incomplete request", s, c)
			}
			for _, id := range c.Instances {
				if !approval.ValidInstanceID(id) {
					t.Fatalf("ParseCommand(%q) accepted instance %q", s, id)
				}
			}
		}
	})
}

func BenchmarkParseCommand(b *testing.B) {
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = fmt.Sprintf("ins-%08d", i)
	}
	text := strings.Join(ids, " ") + " --soft-first --region ap-shanghai R&amp;D kernel &lt;update&gt; <@U012AB|ana>"
	for b.Loop() {
		if _, err := ParseCommand(text); err != nil {
			b.Fatal(err)
		}
	}
}

func TestParseCommandSelectors(t *testing.T) {
	tests := []struct {
		name      string
		text      string
		instances []string
		selector  approval.Selector
		reason    string
	}{
		{"Tag", "tag:role=web kernel update", nil, approval.Selector{Tags: map[string][]string{"role": {"web"}}}, "kernel update"},
		{"TagsNarrowAcrossKeys", "tag:role=web tag:env=prod patch", nil,
			approval.Selector{Tags: map[string][]string{"role": {"web"}, "env": {"prod"}}}, "patch"},
		{"TagsWidenOnOneKey", "tag:role=web tag:role=db tag:role=web patch", nil,
			approval.Selector{Tags: map[string][]string{"role": {"web", "db"}}}, "patch"},
		{"TagValueWithEquals", "tag:query=a=b x", nil, approval.Selector{Tags: map[string][]string{"query": {"a=b"}}}, "x"},
		{"TagCaseKept", "TAG:Role=Web x", nil, approval.Selector{Tags: map[string][]string{"Role": {"Web"}}}, "x"},
		{"TagEntityUndone", "tag:team=r&amp;d x", nil, approval.Selector{Tags: map[string][]string{"team": {"r&d"}}}, "x"},
		{"NameExactAndPrefix", "name:web-01 name:api-* x", nil, approval.Selector{Names: []string{"web-01", "api-*"}}, "x"},
		{"NameLinkUndone", "name:<http://web.example.com|web.example.com> x", nil, approval.Selector{Names: []string{"web.example.com"}}, "x"},
		{"IPs", "ip:10.0.1.12 ip:203.0.113.7 x", nil, approval.Selector{IPs: []string{"10.0.1.12", "203.0.113.7"}}, "x"},
		{"IPv6Normalised", "ip:2001:DB8::1 x", nil, approval.Selector{IPs: []string{"2001:db8::1"}}, "x"},
		{"Zone", "zone:ap-guangzhou-3 zone:ap-guangzhou-4 x", nil, approval.Selector{Zones: []string{"ap-guangzhou-3", "ap-guangzhou-4"}}, "x"},
		{"MixedWithIDsAndOptions", "ins-1a2b3c4d tag:role=web --hard zone:ap-guangzhou-3 hung agent", []string{"ins-1a2b3c4d"},
			approval.Selector{Tags: map[string][]string{"role": {"web"}}, Zones: []string{"ap-guangzhou-3"}}, "hung agent"},
		{"MarkupIsText", "tag:x=<!channel> x", nil, approval.Selector{Tags: map[string][]string{"x": {"@channel"}}}, "x"},
		{"WordsInReasonKept", "tag:role=web see: OPS-1 http://x.example", nil, approval.Selector{Tags: map[string][]string{"role": {"web"}}}, "see: OPS-1 http://x.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCommand(tt.text)
			if err != nil {
				t.Fatalf("ParseCommand(%q) error: %v", tt.text, err)
			}
			c, ok := got.(CreateCommand)
			if !ok {
				t.Fatalf("ParseCommand(%q) = %#v, want a CreateCommand", tt.text, got)
			}
			if !reflect.DeepEqual(c.Instances, tt.instances) || !reflect.DeepEqual(c.Selector, tt.selector) || c.Reason != tt.reason {
				t.Errorf("ParseCommand(%q) = %v %#v %q, want %v %#v %q", tt.text, c.Instances, c.Selector, c.Reason, tt.instances, tt.selector, tt.reason)
			}
		})
	}
}

func TestParseCommandSelectorErrors(t *testing.T) {
	many := make([]string, approval.MaxSelectorWords+1)
	for i := range many {
		many[i] = fmt.Sprintf("tag:n=%d", i)
	}
	tests := []struct {
		name string
		text string
		want string
	}{
		{"TagEmpty", "tag: x", "`tag:` has nothing after `tag:`"},
		{"TagNoValue", "tag:role x", "`tag:role` is not a tag selector: write `tag:KEY=VALUE`"},
		{"TagEmptyValue", "tag:role= x", "`tag:role=` is not a tag selector"},
		{"TagEmptyKey", "tag:=web x", "`tag:=web` is not a tag selector"},
		{"NameStarOnly", "name:* x", "`name:*` would match every instance"},
		{"NameInnerStar", "name:web*01 x", "`name:web*01` has a `*` inside the name"},
		{"IPNotAddress", "ip:10.0.0 x", "`ip:10.0.0` is not an IP address"},
		{"IPRange", "ip:10.0.0.0/24 x", "`ip:10.0.0.0/24` is not an IP address"},
		{"ZoneBad", "zone:Guangzhou x", "`zone:Guangzhou` is not a zone name"},
		{"ZoneIsRegion", "zone:ap x", "`zone:ap` is not a zone name"},
		{"AngleBrackets", "tag:x=&lt;b&gt; x", "`tag:x=&lt;b&gt;` is not a selector Tencent Cloud could match"},
		{"NoReason", "tag:role=web --hard", "reason is required, for example `/reboot tag:role=web kernel update`"},
		{"TooMany", strings.Join(many, " ") + " x", "more than 50 selector words"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCommand(tt.text)
			if err == nil {
				t.Fatalf("ParseCommand(%q) = %#v, want an error", truncate(tt.text, 60), got)
			}
			if k := approval.ErrorKind(err); k != approval.Invalid {
				t.Errorf("error kind = %s, want %s", k, approval.Invalid)
			}
			msg := approval.ErrorMessage(err)
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not contain %q", msg, tt.want)
			}
			if strings.ContainsAny(msg, "<>") {
				t.Errorf("error %q carries markup", msg)
			}
		})
	}
}
