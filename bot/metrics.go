package bot

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"rebootbot/approval"
)

// Metrics counts what the bot does and writes it in the Prometheus text
// exposition format. A nil *Metrics counts nothing, so every part of the
// bot may be built without one.
type Metrics struct {
	mu       sync.Mutex
	counters map[string]map[string]float64 // metric name → label set → value
	ack      map[string]*histogram         // ack latency by kind
}

// ackBuckets are the upper bounds of the ack latency histogram: Slack gives
// 3 seconds.
var ackBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3}

type histogram struct {
	counts []uint64 // per bucket, not cumulative
	sum    float64
	n      uint64
}

// metricHelp documents every counter; only these names are ever written.
var metricHelp = map[string]string{
	"rebootbot_requests_created_total":         "Reboot requests whose card was posted.",
	"rebootbot_requests_total":                 "Reboot requests that reached an outcome, by outcome.",
	"rebootbot_approvals_total":                "Approvals counted.",
	"rebootbot_refusals_total":                 "Clicks refused (outsider, self-approval, repeat, too late).",
	"rebootbot_audit_events_total":             "Audit events stored, by type.",
	"rebootbot_signature_rejections_total":     "Slack requests refused for their signature, by reason.",
	"rebootbot_bad_requests_total":             "Slack requests refused as oversize or malformed, by reason.",
	"rebootbot_cloud_calls_total":              "Tencent Cloud API calls, by action and result code (ok for success).",
	"rebootbot_cloud_errors_total":             "Tencent Cloud API errors, by action and code.",
	"rebootbot_slack_api_calls_total":          "Slack Web API calls, by method and result (ok or the error).",
	"rebootbot_slack_deliveries_total":         "Commands and interactions received from Slack, by kind.",
	"rebootbot_instances_rebooted_total":       "Instances whose reboot finished, by result.",
	"rebootbot_background_tasks_dropped_total": "Background tasks not started because the bot was shutting down.",
}

// NewMetrics returns an empty set of metrics.
func NewMetrics() *Metrics {
	return &Metrics{counters: map[string]map[string]float64{}, ack: map[string]*histogram{}}
}

func (m *Metrics) add(name string, v float64, labels ...string) {
	if m == nil {
		return
	}
	key := labelSet(labels)
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.counters[name]
	if c == nil {
		c = map[string]float64{}
		m.counters[name] = c
	}
	c[key] += v
}

// labelSet renders name/value pairs as {a="1",b="2"}.
func labelSet(kv []string) string {
	if len(kv) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i])
		b.WriteString(`="`)
		b.WriteString(labelValue(kv[i+1]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// labelValue escapes v for the exposition format and bounds its length, so
// that an odd error string cannot bloat the output.
func labelValue(v string) string {
	return labelEscaper.Replace(truncate(v, 80))
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// ObserveEvent counts an audit event; pass it as the engine's Observer.
func (m *Metrics) ObserveEvent(e *approval.Event) {
	if m == nil || e == nil {
		return
	}
	m.add("rebootbot_audit_events_total", 1, "type", string(e.Type))
	switch e.Type {
	case approval.EventRequested:
		m.add("rebootbot_requests_created_total", 1)
	case approval.EventApproved:
		m.add("rebootbot_approvals_total", 1)
	case approval.EventApprovalRefused:
		m.add("rebootbot_refusals_total", 1)
	case approval.EventRejected:
		m.add("rebootbot_requests_total", 1, "outcome", "rejected")
	case approval.EventDenied:
		m.add("rebootbot_requests_total", 1, "outcome", "denied")
	case approval.EventCancelled:
		m.add("rebootbot_requests_total", 1, "outcome", "cancelled")
	case approval.EventExpired:
		m.add("rebootbot_requests_total", 1, "outcome", "expired")
	case approval.EventCompleted:
		m.add("rebootbot_requests_total", 1, "outcome", outcomeLabel(e.Details.Outcome))
	case approval.EventInstanceSucceeded:
		m.add("rebootbot_instances_rebooted_total", float64(max(1, len(e.Instances))), "result", "succeeded")
	case approval.EventInstanceFailed:
		m.add("rebootbot_instances_rebooted_total", float64(max(1, len(e.Instances))), "result", "failed")
	}
}

// outcomeLabel turns "Partially failed" or "PARTIALLY_FAILED" into
// "partially_failed".
func outcomeLabel(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return "unknown"
	}
	return strings.ReplaceAll(s, " ", "_")
}

// CloudCall counts one Tencent Cloud API call; code is "" on success or
// Tencent's error code. It fits cloud.Config.OnCall.
func (m *Metrics) CloudCall(action, code string) {
	if m == nil {
		return
	}
	result := code
	if result == "" {
		result = "ok"
	}
	m.add("rebootbot_cloud_calls_total", 1, "action", action, "code", result)
	if code != "" {
		m.add("rebootbot_cloud_errors_total", 1, "action", action, "code", code)
	}
}

// SignatureRejected counts a request refused for its signature.
func (m *Metrics) SignatureRejected(reason string) {
	m.add("rebootbot_signature_rejections_total", 1, "reason", reason)
}

// BadRequest counts a request refused as oversize or malformed.
func (m *Metrics) BadRequest(reason string) {
	m.add("rebootbot_bad_requests_total", 1, "reason", reason)
}

// SlackCall counts one Slack Web API call and its result.
func (m *Metrics) SlackCall(method, result string) {
	m.add("rebootbot_slack_api_calls_total", 1, "method", method, "result", result)
}

// Delivery counts a command or interaction received from Slack.
func (m *Metrics) Delivery(kind string) {
	m.add("rebootbot_slack_deliveries_total", 1, "kind", kind)
}

// TaskDropped counts background work refused during shutdown.
func (m *Metrics) TaskDropped() {
	m.add("rebootbot_background_tasks_dropped_total", 1)
}

// ObserveAck records how long answering a delivery of kind took.
func (m *Metrics) ObserveAck(kind string, d time.Duration) {
	if m == nil {
		return
	}
	s := d.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.ack[kind]
	if h == nil {
		h = &histogram{counts: make([]uint64, len(ackBuckets))}
		m.ack[kind] = h
	}
	for i, ub := range ackBuckets {
		if s <= ub {
			h.counts[i]++
			break
		}
	}
	h.sum += s
	h.n++
}

// WriteTo writes every metric in the Prometheus text format.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	if m != nil {
		m.mu.Lock()
		names := make([]string, 0, len(metricHelp))
		for name := range metricHelp {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n", name, metricHelp[name], name)
			c := m.counters[name]
			keys := make([]string, 0, len(c))
			for k := range c {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				fmt.Fprintf(&b, "%s%s %s\n", name, k, strconv.FormatFloat(c[k], 'g', -1, 64))
			}
		}
		const hname = "rebootbot_ack_seconds"
		fmt.Fprintf(&b, "# HELP %s Time from receiving a command or interaction to answering Slack.\n# TYPE %s histogram\n", hname, hname)
		kinds := make([]string, 0, len(m.ack))
		for k := range m.ack {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		for _, kind := range kinds {
			h := m.ack[kind]
			var cum uint64
			for i, ub := range ackBuckets {
				cum += h.counts[i]
				fmt.Fprintf(&b, "%s_bucket{kind=\"%s\",le=\"%s\"} %d\n", hname, labelValue(kind), strconv.FormatFloat(ub, 'g', -1, 64), cum)
			}
			fmt.Fprintf(&b, "%s_bucket{kind=\"%s\",le=\"+Inf\"} %d\n", hname, labelValue(kind), h.n)
			fmt.Fprintf(&b, "%s_sum{kind=\"%s\"} %s\n", hname, labelValue(kind), strconv.FormatFloat(h.sum, 'g', -1, 64))
			fmt.Fprintf(&b, "%s_count{kind=\"%s\"} %d\n", hname, labelValue(kind), h.n)
		}
		m.mu.Unlock()
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// ServeHTTP serves GET /metrics.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = m.WriteTo(w)
}
