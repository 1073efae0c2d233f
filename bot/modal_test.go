package bot

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"rebootbot/approval"
)

func TestRequestForm(t *testing.T) {
	p := &approval.Policy{Regions: []string{"ap-guangzhou", "ap-shanghai"}, DefaultRegion: "ap-shanghai"}
	v := RequestForm(p, "C0OPS", "https://hooks.slack.com/commands/T/1/x")
	for name, o := range map[string]*slack.TextBlockObject{"title": v.Title, "submit": v.Submit, "close": v.Close} {
		if n := utf8.RuneCountInString(o.Text); n == 0 || n > 24 {
			t.Errorf("%s %q has %d characters, limit 24", name, o.Text, n)
		}
	}
	if len(v.PrivateMetadata) > 3000 {
		t.Errorf("private_metadata is %d bytes", len(v.PrivateMetadata))
	}
	if !slack.ValidateUniqueBlockID(v) {
		t.Error("block IDs are not unique")
	}
	raw, _ := json.Marshal(v)
	for _, want := range []string{`"callback_id":"reboot_request"`, `"block_id":"instances"`, `"block_id":"selector"`, `"block_id":"stop_type"`, `"block_id":"region"`, `"block_id":"reason"`, `"static_select"`, `"value":"ap-shanghai"`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("form lacks %s", want)
		}
	}
	long := RequestForm(p, "C0OPS", "https://x/"+strings.Repeat("a", 3000))
	if len(long.PrivateMetadata) > 3000 || !strings.Contains(long.PrivateMetadata, "C0OPS") {
		t.Errorf("private_metadata with a huge response_url = %q", truncate(long.PrivateMetadata, 80))
	}
}

// submission returns a view as Slack sends it back on submit.
func submission(meta string, values map[string]slack.BlockAction) *slack.View {
	state := &slack.ViewState{Values: map[string]map[string]slack.BlockAction{}}
	for block, a := range values {
		state.Values[block] = map[string]slack.BlockAction{formValueAction: a}
	}
	return &slack.View{CallbackID: FormCallbackID, PrivateMetadata: meta, State: state}
}

func TestParseRequestForm(t *testing.T) {
	meta := `{"channel":"C0OPS","response_url":"https://hooks.example/r/1"}`
	text := func(s string) slack.BlockAction { return slack.BlockAction{Value: s} }
	option := func(s string) slack.BlockAction {
		return slack.BlockAction{SelectedOption: slack.OptionBlockObject{Value: s}}
	}
	tests := []struct {
		name     string
		meta     string
		values   map[string]slack.BlockAction
		want     CreateCommand
		wantErrs []string // block IDs with an error
	}{
		{"Valid", meta, map[string]slack.BlockAction{
			BlockInstances: text("ins-1a2b3c4d, ins-5e6f7a8b\nins-1a2b3c4d"), BlockStopType: option("SOFT_FIRST"),
			BlockRegion: option("ap-shanghai"), BlockReason: text("  disk <full> & stuck  "),
		}, CreateCommand{Instances: []string{"ins-1a2b3c4d", "ins-5e6f7a8b"}, StopType: approval.SoftFirst, Region: "ap-shanghai", Reason: "disk <full> & stuck"}, nil},
		{"TypedRegionAndDefaultStop", meta, map[string]slack.BlockAction{
			BlockInstances: text("ins-1a2b3c4d"), BlockRegion: text("ap-beijing"), BlockReason: text("x"),
		}, CreateCommand{Instances: []string{"ins-1a2b3c4d"}, StopType: approval.Soft, Region: "ap-beijing", Reason: "x"}, nil},
		{"Empty", meta, nil, CreateCommand{}, []string{BlockInstances, BlockReason}},
		{"Selector", meta, map[string]slack.BlockAction{
			BlockSelector: text("tag:role=web  tag:role=api\nzone:ap-guangzhou-3"), BlockReason: text("x"),
		}, CreateCommand{Selector: approval.Selector{Tags: map[string][]string{"role": {"web", "api"}}, Zones: []string{"ap-guangzhou-3"}}, StopType: approval.Soft, Reason: "x"}, nil},
		{"SelectorAndIDs", meta, map[string]slack.BlockAction{
			BlockInstances: text("ins-1a2b3c4d"), BlockSelector: text("name:web-*"), BlockReason: text("x"),
		}, CreateCommand{Instances: []string{"ins-1a2b3c4d"}, Selector: approval.Selector{Names: []string{"web-*"}}, StopType: approval.Soft, Reason: "x"}, nil},
		{"SelectorNotASelector", meta, map[string]slack.BlockAction{BlockSelector: text("role=web"), BlockReason: text("x")}, CreateCommand{}, []string{BlockSelector}},
		{"SelectorMalformed", meta, map[string]slack.BlockAction{BlockSelector: text("ip:10.0.0"), BlockReason: text("x")}, CreateCommand{}, []string{BlockSelector}},
		{"BadInstance", meta, map[string]slack.BlockAction{BlockInstances: text("ins-1a2b3c4d ins-NOPE"), BlockReason: text("x")}, CreateCommand{}, []string{BlockInstances}},
		{"BadStopType", meta, map[string]slack.BlockAction{BlockInstances: text("ins-1a2b3c4d"), BlockStopType: option("FORCE"), BlockReason: text("x")}, CreateCommand{}, []string{BlockStopType}},
		{"BadRegion", meta, map[string]slack.BlockAction{BlockInstances: text("ins-1a2b3c4d"), BlockRegion: text("Mars 1"), BlockReason: text("x")}, CreateCommand{}, []string{BlockRegion}},
		{"LongReason", meta, map[string]slack.BlockAction{BlockInstances: text("ins-1a2b3c4d"), BlockReason: text(strings.Repeat("é", 1001))}, CreateCommand{}, []string{BlockReason}},
		{"LostChannel", `{"channel":"<!channel>"}`, map[string]slack.BlockAction{BlockInstances: text("ins-1a2b3c4d"), BlockReason: text("x")}, CreateCommand{}, []string{BlockInstances}},
		{"BadMetadata", `nope`, nil, CreateCommand{}, []string{BlockInstances}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ch, responseURL, errs := ParseRequestForm(submission(tt.meta, tt.values))
			var gotErrs []string
			for _, b := range []string{BlockInstances, BlockSelector, BlockStopType, BlockRegion, BlockReason} {
				if errs[b] != "" {
					gotErrs = append(gotErrs, b)
				}
			}
			if fmt.Sprint(gotErrs) != fmt.Sprint(tt.wantErrs) {
				t.Fatalf("errors %v, want on %v", errs, tt.wantErrs)
			}
			if len(tt.wantErrs) > 0 {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("command = %#v, want %#v", got, tt.want)
			}
			if ch != "C0OPS" || responseURL != "https://hooks.example/r/1" {
				t.Errorf("channel %q, response_url %q", ch, responseURL)
			}
		})
	}
}

func TestPackLines(t *testing.T) {
	line := strings.Repeat("x", 999)
	lines := []string{"title"}
	for range 20 {
		lines = append(lines, line)
	}
	texts := packLines(lines, 3)
	if len(texts) != 3 {
		t.Fatalf("%d texts, want 3", len(texts))
	}
	shown := 0
	for _, s := range texts {
		if n := utf8.RuneCountInString(s); n > maxSectionText {
			t.Errorf("text of %d characters", n)
		}
		shown += strings.Count(s, line)
	}
	last := texts[len(texts)-1]
	if want := fmt.Sprintf("… and %d more", 20-shown); !strings.HasSuffix(last, want) {
		t.Errorf("last text ends %q, want %q", last[max(0, len(last)-30):], want)
	}
	if got := packLines([]string{"a", "b"}, 3); len(got) != 1 || got[0] != "a\nb" {
		t.Errorf("packLines(a, b) = %q", got)
	}
}

func FuzzDecodeInteraction(f *testing.F) {
	for _, s := range []string{
		`{"type":"block_actions","user":{"id":"U1"},"actions":[{"action_id":"approve","value":"R-1"}]}`,
		`{"type":"view_submission","user":{"id":"U1"},"view":{"callback_id":"reboot_request","private_metadata":"{\"channel\":\"C1\"}","state":{"values":{"instances":{"value":{"value":"ins-1a2b3c4d"}}}}}}`,
		`{"type":"block_actions","actions":[{"type":"static_select","selected_option":{}}],"state":{"values":{}}}`,
		`{"type":"view_submission","view":{"blocks":[{"type":"nope"}]}}`,
		`[]`, `{"type":1}`, `{"actions":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		cb, err := decodeInteraction(payload)
		if err != nil {
			return
		}
		for _, a := range cb.ActionCallback.BlockActions {
			if a != nil {
				_ = a.ActionID + a.Value
			}
		}
		ParseRequestForm(&cb.View)
	})
}
