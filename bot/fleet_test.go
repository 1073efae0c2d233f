package bot_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"rebootbot/approval"
	"rebootbot/bot"
	"rebootbot/cloud/emulator"
	"rebootbot/internal/testutil"
)

// webFleet is 24 instances tagged role=web over three zones, and two more
// that are STOPPED, added to the env's emulator.
func webFleet(t *testing.T, e *env) (running []string) {
	t.Helper()
	zones := []string{"ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-6"}
	var ins []emulator.Instance
	for i := range 26 {
		in := emulator.Instance{ID: fmt.Sprintf("ins-fleet%03d", i), Name: fmt.Sprintf("web-prod-%02d", i), Zone: zones[i%3],
			PrivateIPs: []string{fmt.Sprintf("10.9.0.%d", i+1)}, Tags: map[string]string{"role": "web", "env": "prod"}}
		if i >= 24 {
			in.State = emulator.StateStopped
		} else {
			running = append(running, in.ID)
		}
		ins = append(ins, in)
	}
	if err := e.emu.Add(ins...); err != nil {
		t.Fatal(err)
	}
	return running
}

// TestFleetRequest selects by tag, checks the frozen set on the card and in
// the audit, and reboots exactly that set, not an instance that starts
// matching after the request was made.
func TestFleetRequest(t *testing.T) {
	e := mustEnv(t)
	running := webFleet(t, e)
	r := e.create(requester, "tag:role=web tag:env=prod kernel rollout")

	if got := r.InstanceIDs(); !sameSet(got, running) {
		t.Fatalf("request holds %v, want the 24 RUNNING instances", got)
	}
	if want := approval.Fingerprint(running); r.Fingerprint != want {
		t.Errorf("fingerprint = %q, want %q", r.Fingerprint, want)
	}
	if !slices.Equal(r.Selector, []string{"tag:env=prod", "tag:role=web"}) {
		t.Errorf("selector = %v", r.Selector)
	}
	card := e.waitCard(r.ID, r.Fingerprint)
	for _, want := range []string{"tag:env=prod tag:role=web", "24 instances", "2 STOPPED not included"} {
		if !strings.Contains(card, want) {
			t.Errorf("card lacks %q", want)
		}
	}
	evs := e.events(approval.AuditQuery{RequestID: r.ID})
	if len(evs) != 1 || evs[0].Type != approval.EventRequested {
		t.Fatalf("events %v, want one requested", eventTypes(evs))
	}
	d := evs[0].Details
	if !slices.Equal(d.Selector, r.Selector) || d.Fingerprint != r.Fingerprint || !sameSet(evs[0].Instances, running) || d.Note != "2 STOPPED not included" {
		t.Errorf("requested event = %+v, instances %v", d, evs[0].Instances)
	}

	ans, _ := e.command(approverA, channel, "audit "+r.ID)
	if want := "selected `tag:env=prod tag:role=web` · fingerprint `" + r.Fingerprint + "`"; !strings.Contains(ans.Raw, want) {
		t.Errorf("/reboot audit %s lacks %q: %s", r.ID, want, ans.Raw)
	}

	// An instance that matches only now is not part of the request.
	late := emulator.Instance{ID: "ins-latecome", Name: "web-prod-late", Zone: "ap-guangzhou-3", Tags: map[string]string{"role": "web", "env": "prod"}}
	if err := e.emu.Add(late); err != nil {
		t.Fatal(err)
	}
	e.click(approverA, bot.ActionApprove, r.ID)
	done := e.waitState(r.ID, approval.Succeeded)
	for _, id := range running {
		if s, _ := e.emu.Status(id); s.LatestOperation != "RebootInstances" || s.LatestOperationState != "SUCCESS" {
			t.Errorf("%s: latest operation %s %s, want a successful reboot", id, s.LatestOperation, s.LatestOperationState)
		}
		if run := done.Run(id); run == nil || run.State != approval.RunSucceeded {
			t.Errorf("%s: run %+v", id, run)
		}
	}
	for _, id := range []string{"ins-latecome", "ins-fleet024", "ins-fleet025"} {
		if s, _ := e.emu.Status(id); s.LatestOperation != "" {
			t.Errorf("%s was touched: %s", id, s.LatestOperation)
		}
	}
	// 24 instances are too many for a message each: the thread gets the
	// start and the outcome.
	testutil.Eventually(t, waitLong, func() bool { return e.request(r.ID).EndAnnounced }, "the outcome of %s in the thread", r.ID)
	thread := e.stub.Thread(r.Card.TS)
	if len(thread) != 2 || !strings.Contains(thread[1].Text, "*Succeeded*: 24 of 24 instances rebooted.") {
		var texts []string
		for _, m := range thread {
			texts = append(texts, m.Text)
		}
		t.Errorf("thread = %q, want the start and the outcome", texts)
	}
}

// TestFleetMixedWithIDs adds named instances to a selection, once each.
func TestFleetMixedWithIDs(t *testing.T) {
	e := mustEnv(t)
	webFleet(t, e)
	r := e.create(requester, "ins-web00001 ins-fleet000 zone:ap-guangzhou-6 name:web-prod-* both")
	ids := r.InstanceIDs()
	want := []string{"ins-web00001", "ins-fleet000", "ins-fleet002", "ins-fleet005", "ins-fleet008", "ins-fleet011", "ins-fleet014", "ins-fleet017", "ins-fleet020", "ins-fleet023"}
	if !slices.Equal(ids, want) {
		t.Errorf("instances = %v, want the named ones first, then the selected by zone and name: %v", ids, want)
	}
	if r.Fingerprint != approval.Fingerprint(want) {
		t.Errorf("fingerprint %s does not match the set", r.Fingerprint)
	}
}

// TestFleetRefusals: a selection that cannot be requested is refused with
// the reason, posts no card, holds nothing and is audited once.
func TestFleetRefusals(t *testing.T) {
	tests := []struct {
		name   string
		policy func(*approval.Policy)
		setup  func(e *env)
		text   string
		want   string
	}{
		{name: "MatchesNothing", text: "tag:role=cache flush", want: "Nothing was requested: `tag:role=cache` matches no instance in ap-guangzhou."},
		{name: "NothingRunning", text: "name:web-prod-24 name:web-prod-25 stuck",
			want: "`name:web-prod-24 name:web-prod-25` matches no RUNNING instance in ap-guangzhou (2 STOPPED)"},
		{name: "OverMaxInstances", policy: func(p *approval.Policy) { p.MaxInstances = 10 }, text: "tag:role=web too many",
			want: "This request selects 24 instances; the policy allows at most 10 in one request (max_instances)."},
		{name: "WavesRequired", policy: func(p *approval.Policy) { p.Waves.RequiredAbove = 20 }, text: "tag:role=web rollout",
			want: "requests of more than 20 roll in waves (waves.required_above)"},
		{name: "ZoneOutsideRegion", text: "zone:ap-shanghai-2 rollout", want: "Zone ap-shanghai-2 is not in region ap-guangzhou; pick the region with `--region ap-shanghai`."},
		{name: "NamedIDNotRunning", text: "ins-stopped1 tag:role=web rollout", want: "ins-stopped1 is STOPPED"},
		{name: "DenyRuleOnSelected", setup: func(e *env) {
			if err := e.emu.Add(emulator.Instance{ID: "ins-fleetdny", Name: "web-prod-ledger", Tags: map[string]string{"role": "web", "reboot": "deny"}}); err != nil {
				t.Fatal(err)
			}
		}, text: "tag:role=web rollout", want: "does not allow rebooting ins-fleetdny"},
		{name: "OverlapsOpenRequest", setup: func(e *env) { e.create(requester, "ins-fleet003 first") },
			text: "tag:role=web rollout", want: "ins-fleet003 already has an open request, R-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustEnv(t, func(c *envConfig) {
				if tt.policy != nil {
					tt.policy(c.policy)
				}
			})
			webFleet(t, e)
			if tt.setup != nil {
				tt.setup(e)
			}
			cardsBefore := len(e.stub.cards(channel))
			eventsBefore := len(e.events(approval.AuditQuery{}))
			ans, responseURL := e.command(requester, channel, tt.text)
			if ans.Status != http.StatusOK || !strings.HasPrefix(ans.text(), "Checking") {
				t.Fatalf("command answered %d %q", ans.Status, ans.Raw)
			}
			if got := e.responseText(responseURL, 1); !strings.Contains(got, tt.want) {
				t.Errorf("answer %q does not contain %q", got, tt.want)
			}
			if n := len(e.stub.cards(channel)); n != cardsBefore {
				t.Errorf("%d cards posted, want none", n-cardsBefore)
			}
			evs := e.events(approval.AuditQuery{})[eventsBefore:]
			if len(evs) != 1 || evs[0].Type != approval.EventRejected {
				t.Fatalf("audit events %v, want one rejected event", eventTypes(evs))
			}
			if len(evs[0].Details.Selector) == 0 {
				t.Errorf("rejected event does not record the selector: %+v", evs[0].Details)
			}
			// Nothing is held: a request for one of the fleet goes through.
			e.create(requester, "ins-fleet001 after the refusal")
		})
	}
}

// TestFleetStatusPages pages through a request's instances.
func TestFleetStatusPages(t *testing.T) {
	e := mustEnv(t)
	running := webFleet(t, e)
	r := e.create(requester, "tag:role=web patch")
	ans, _ := e.command(requester, channel, "status "+r.ID+" --page 1")
	if ans.Status != http.StatusOK {
		t.Fatalf("status answered %d", ans.Status)
	}
	for _, id := range running {
		if !strings.Contains(ans.Raw, id) {
			t.Errorf("page 1 lacks %s", id)
		}
	}
	ans, _ = e.command(requester, channel, "status "+r.ID+" --page 2")
	if got, want := ans.text(), r.ID+" has 24 instances on 1 page; ask for a page from 1 to 1."; got != want {
		t.Errorf("page 2 answered %q, want %q", got, want)
	}
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}
