package bot

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"rebootbot/approval"
)

func TestMetricsExposition(t *testing.T) {
	m := NewMetrics()
	for _, ev := range []approval.Event{
		{Type: approval.EventRequested}, {Type: approval.EventApproved}, {Type: approval.EventApproved},
		{Type: approval.EventApprovalRefused}, {Type: approval.EventDenied}, {Type: approval.EventExpired},
		{Type: approval.EventCompleted, Details: approval.Details{Outcome: "PARTIALLY_FAILED"}},
		{Type: approval.EventInstanceFailed, Instances: []string{"ins-1"}},
	} {
		m.ObserveEvent(&ev)
	}
	m.CloudCall("RebootInstances", "")
	m.CloudCall("RebootInstances", "RequestLimitExceeded")
	m.SignatureRejected("stale")
	m.SlackCall("chat.update", "ratelimited")
	m.SlackCall("chat.update", `odd"value\`)
	m.ObserveAck("command", 30*time.Millisecond)
	m.ObserveAck("command", 2500*time.Millisecond)
	m.ObserveAck("command", 4*time.Second)

	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type = %q", ct)
	}
	body := rec.Body.String()
	for _, want := range []string{
		"# TYPE rebootbot_requests_total counter",
		`rebootbot_requests_total{outcome="denied"} 1`,
		`rebootbot_requests_total{outcome="expired"} 1`,
		`rebootbot_requests_total{outcome="partially_failed"} 1`,
		"rebootbot_requests_created_total 1",
		"rebootbot_approvals_total 2",
		"rebootbot_refusals_total 1",
		`rebootbot_instances_rebooted_total{result="failed"} 1`,
		`rebootbot_cloud_calls_total{action="RebootInstances",code="ok"} 1`,
		`rebootbot_cloud_calls_total{action="RebootInstances",code="RequestLimitExceeded"} 1`,
		`rebootbot_cloud_errors_total{action="RebootInstances",code="RequestLimitExceeded"} 1`,
		`rebootbot_signature_rejections_total{reason="stale"} 1`,
		`rebootbot_slack_api_calls_total{method="chat.update",result="ratelimited"} 1`,
		`rebootbot_slack_api_calls_total{method="chat.update",result="odd\"value\\"} 1`,
		"# TYPE rebootbot_ack_seconds histogram",
		`rebootbot_ack_seconds_bucket{kind="command",le="0.05"} 1`,
		`rebootbot_ack_seconds_bucket{kind="command",le="2"} 1`,
		`rebootbot_ack_seconds_bucket{kind="command",le="3"} 2`,
		`rebootbot_ack_seconds_bucket{kind="command",le="+Inf"} 3`,
		`rebootbot_ack_seconds_count{kind="command"} 3`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("exposition lacks %s", want)
		}
	}
	// Every sample line is "name{labels} value" or "name value".
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i < 0 || !strings.HasPrefix(line, "rebootbot_") {
			t.Errorf("bad sample line %q", line)
		}
	}
}

func TestMetricsNil(t *testing.T) {
	var m *Metrics
	m.ObserveEvent(&approval.Event{Type: approval.EventApproved})
	m.CloudCall("DescribeInstances", "")
	m.ObserveAck("command", time.Second)
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("nil metrics served %d", rec.Code)
	}
}

func BenchmarkMetricsSlackCall(b *testing.B) {
	m := NewMetrics()
	for b.Loop() {
		m.SlackCall("chat.postMessage", "ok")
	}
}
