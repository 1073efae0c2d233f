package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"rebootbot/approval"
)

// scrape returns what GET /metrics serves.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", rec.Code)
	}
	body, _ := io.ReadAll(rec.Body)
	return string(body)
}

// TestNamesKept checks that every metric name the bot has exposed is still
// served, with its type, beside the Go runtime and process metrics.
func TestNamesKept(t *testing.T) {
	m := New(Options{})
	for _, ev := range []approval.Event{
		{Type: approval.EventRequested}, {Type: approval.EventApproved}, {Type: approval.EventApproved},
		{Type: approval.EventApprovalRefused}, {Type: approval.EventDenied}, {Type: approval.EventExpired},
		{Type: approval.EventCompleted, Details: approval.Details{Outcome: "PARTIALLY_FAILED"}},
		{Type: approval.EventInstanceFailed, Instances: []string{"ins-1"}},
	} {
		m.ObserveEvent(&ev)
	}
	m.CardPosted()
	m.CloudCall("RebootInstances", "")
	m.CloudCall("RebootInstances", "RequestLimitExceeded")
	m.SignatureRejected("stale")
	m.BadRequest("oversize")
	m.SlackCall("chat.update", "ratelimited")
	m.Delivery("command")
	m.TaskDropped()
	m.ObserveAck("command", 30*time.Millisecond)
	m.ObserveAck("command", 2500*time.Millisecond)
	m.ObserveAck("command", 4*time.Second)
	m.StoreCommit(true, 3, 4*time.Millisecond)
	m.StoreCommit(false, 16, 8*time.Millisecond)
	m.StoreCommit(false, 2, 2*time.Millisecond)
	body := scrape(t, m)
	for _, want := range []string{
		"# TYPE rebootbot_requests_created_total counter",
		"# TYPE rebootbot_requests_total counter",
		"# TYPE rebootbot_approvals_total counter",
		"# TYPE rebootbot_refusals_total counter",
		"# TYPE rebootbot_audit_events_total counter",
		"# TYPE rebootbot_signature_rejections_total counter",
		"# TYPE rebootbot_bad_requests_total counter",
		"# TYPE rebootbot_cloud_calls_total counter",
		"# TYPE rebootbot_cloud_errors_total counter",
		"# TYPE rebootbot_slack_api_calls_total counter",
		"# TYPE rebootbot_slack_deliveries_total counter",
		"# TYPE rebootbot_instances_rebooted_total counter",
		"# TYPE rebootbot_background_tasks_dropped_total counter",
		"# TYPE rebootbot_ack_seconds histogram",
		`rebootbot_requests_total{outcome="denied"} 1`,
		`rebootbot_requests_total{outcome="expired"} 1`,
		`rebootbot_requests_total{outcome="partially_failed"} 1`,
		"rebootbot_requests_created_total 1",
		"rebootbot_approvals_total 2",
		"rebootbot_refusals_total 1",
		`rebootbot_instances_rebooted_total{result="failed"} 1`,
		`rebootbot_cloud_calls_total{action="RebootInstances",code="ok"} 1`,
		`rebootbot_signature_rejections_total{reason="stale"} 1`,
		`rebootbot_slack_api_calls_total{method="chat.update",result="ratelimited"} 1`,
		`rebootbot_ack_seconds_bucket{kind="command",le="0.05"} 1`,
		`rebootbot_ack_seconds_bucket{kind="command",le="3"} 2`,
		`rebootbot_ack_seconds_bucket{kind="command",le="+Inf"} 3`,
		`rebootbot_ack_seconds_count{kind="command"} 3`,
		"# TYPE rebootbot_store_writes_total counter",
		"# TYPE rebootbot_store_transactions_total counter",
		"# TYPE rebootbot_store_commit_seconds histogram",
		`rebootbot_store_writes_total{queue="urgent"} 3`,
		`rebootbot_store_writes_total{queue="background"} 18`,
		`rebootbot_store_transactions_total{queue="background"} 2`,
		`rebootbot_store_commit_seconds_bucket{queue="background",le="0.005"} 1`,
		`rebootbot_store_commit_seconds_count{queue="urgent"} 1`,
		"# TYPE go_goroutines gauge",
		"# TYPE go_memstats_heap_alloc_bytes gauge",
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("exposition lacks %s", want)
		}
	}
	// The process collector reads /proc.
	if runtime.GOOS == "linux" && !strings.Contains(body, "# TYPE process_cpu_seconds_total counter\n") {
		t.Error("exposition lacks the process metrics")
	}
}

// TestLabelsFromFixedSets checks that values a peer chooses (an interaction
// type, a Slack error, a Tencent Cloud code, an outcome) become "other"
// when they are outside the label's set, and known values are kept.
func TestLabelsFromFixedSets(t *testing.T) {
	m := New(Options{CloudCodes: func(code string) bool { return code == "RequestLimitExceeded" }})
	m.Delivery("interaction:made_up_type")
	m.Delivery("interaction:block_actions")
	m.Delivery("events_api")
	m.SlackCall("chat.update", `odd"value\`)
	m.SlackCall("chat.postMessage", "http_503")
	m.SlackCall("chat.postMessage", "http_5031")
	m.SlackCall("made.up", "ok")
	m.CloudCall("RebootInstances", "RequestLimitExceeded")
	m.CloudCall("RebootInstances", "Made.Up.Code")
	m.CloudCall("MadeUpAction", "")
	m.SignatureRejected("whatever")
	m.BadRequest("huge")
	m.ObserveAck("events_api", time.Millisecond)
	m.ObserveEvent(&approval.Event{Type: "made_up_event"})
	m.ObserveEvent(&approval.Event{Type: approval.EventCompleted, Details: approval.Details{Outcome: "On fire"}})
	body := scrape(t, m)
	for _, want := range []string{
		`rebootbot_slack_deliveries_total{kind="interaction:other"} 1`,
		`rebootbot_slack_deliveries_total{kind="interaction:block_actions"} 1`,
		`rebootbot_slack_deliveries_total{kind="other"} 1`,
		`rebootbot_slack_api_calls_total{method="chat.update",result="other"} 1`,
		`rebootbot_slack_api_calls_total{method="chat.postMessage",result="http_503"} 1`,
		`rebootbot_slack_api_calls_total{method="chat.postMessage",result="other"} 1`,
		`rebootbot_slack_api_calls_total{method="other",result="ok"} 1`,
		`rebootbot_cloud_errors_total{action="RebootInstances",code="RequestLimitExceeded"} 1`,
		`rebootbot_cloud_errors_total{action="RebootInstances",code="other"} 1`,
		`rebootbot_cloud_calls_total{action="other",code="ok"} 1`,
		`rebootbot_signature_rejections_total{reason="other"} 1`,
		`rebootbot_bad_requests_total{reason="other"} 1`,
		`rebootbot_ack_seconds_count{kind="other"} 1`,
		`rebootbot_audit_events_total{type="other"} 1`,
		`rebootbot_requests_total{outcome="other"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("exposition lacks %s", want)
		}
	}
	for _, leaked := range []string{"made_up", "odd", "Made.Up", "MadeUp", "whatever", "huge", "On fire", "on_fire", "events_api", "5031"} {
		if strings.Contains(body, leaked) {
			t.Errorf("exposition carries %q", leaked)
		}
	}
}

// TestNilAndMethods checks that a nil *Metrics counts nothing without
// failing, and that /metrics answers only GET and HEAD.
func TestNilAndMethods(t *testing.T) {
	var m *Metrics
	m.ObserveEvent(&approval.Event{Type: approval.EventApproved})
	m.CardPosted()
	m.CloudCall("RebootInstances", "")
	m.SignatureRejected("stale")
	m.BadRequest("oversize")
	m.SlackCall("chat.update", "ok")
	m.Delivery("command")
	m.TaskDropped()
	m.ObserveAck("command", time.Second)
	m.StoreCommit(true, 1, time.Millisecond)

	h := New(Options{}).Handler()
	for method, want := range map[string]int{
		http.MethodGet: http.StatusOK, http.MethodHead: http.StatusOK, http.MethodPost: http.StatusMethodNotAllowed,
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "/metrics", nil))
		if rec.Code != want {
			t.Errorf("%s /metrics: %d, want %d", method, rec.Code, want)
		}
	}
}
