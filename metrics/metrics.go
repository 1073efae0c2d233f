// Package metrics is rebootbot's Prometheus metrics: what the bot counts,
// the Go runtime and process collectors operators expect, and the /metrics
// handler. The program owns one Metrics and hands its methods to the Slack
// and cloud adapters and to the engine's observer.
//
// Every label value comes from a fixed set: whatever a peer sends (an
// interaction type, a Slack error, a Tencent Cloud code) outside the set
// is counted as "other", so that no one can grow the number of series.
package metrics

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"rebootbot/approval"
)

// other is the label value for anything outside a label's fixed set.
const other = "other"

// Metrics holds the bot's counters and histograms in a registry of its
// own. A nil *Metrics counts nothing.
type Metrics struct {
	reg        *prometheus.Registry
	cloudCodes func(code string) bool

	cardsPosted      prometheus.Counter
	requests         *prometheus.CounterVec
	approvals        prometheus.Counter
	refusals         prometheus.Counter
	auditEvents      *prometheus.CounterVec
	signatureRejects *prometheus.CounterVec
	badRequests      *prometheus.CounterVec
	cloudCalls       *prometheus.CounterVec
	cloudErrors      *prometheus.CounterVec
	slackCalls       *prometheus.CounterVec
	deliveries       *prometheus.CounterVec
	rebooted         *prometheus.CounterVec
	tasksDropped     prometheus.Counter
	ack              *prometheus.HistogramVec
	storeWrites      *prometheus.CounterVec
	storeCommits     *prometheus.CounterVec
	storeCommit      *prometheus.HistogramVec
}

// ackBuckets are the upper bounds of the ack latency histogram: Slack gives
// 3 seconds.
var ackBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3}

// commitBuckets are the upper bounds of the store commit histogram: a
// click's answer waits for one or two commits.
var commitBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}

// Options configures Metrics.
type Options struct {
	// CloudCodes reports whether a Tencent Cloud error code is one the
	// bot knows (cloud.KnownCode); others are counted as "other". Nil
	// counts every error code as "other".
	CloudCodes func(code string) bool
}

// New returns the bot's metrics, registered with the Go runtime and process
// collectors.
func New(opts Options) *Metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	vec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &Metrics{
		reg:              prometheus.NewRegistry(),
		cloudCodes:       opts.CloudCodes,
		cardsPosted:      counter("rebootbot_requests_created_total", "Reboot requests whose card was posted."),
		requests:         vec("rebootbot_requests_total", "Reboot requests that reached an outcome, by outcome.", "outcome"),
		approvals:        counter("rebootbot_approvals_total", "Approvals counted."),
		refusals:         counter("rebootbot_refusals_total", "Clicks refused (outsider, self-approval, repeat, too late)."),
		auditEvents:      vec("rebootbot_audit_events_total", "Audit events stored, by type.", "type"),
		signatureRejects: vec("rebootbot_signature_rejections_total", "Slack requests refused for their signature, by reason.", "reason"),
		badRequests:      vec("rebootbot_bad_requests_total", "Slack requests refused as oversize or malformed, by reason.", "reason"),
		cloudCalls:       vec("rebootbot_cloud_calls_total", "Tencent Cloud API calls, by action and result code (ok for success).", "action", "code"),
		cloudErrors:      vec("rebootbot_cloud_errors_total", "Tencent Cloud API errors, by action and code.", "action", "code"),
		slackCalls:       vec("rebootbot_slack_api_calls_total", "Slack Web API calls, by method and result (ok or the error).", "method", "result"),
		deliveries:       vec("rebootbot_slack_deliveries_total", "Commands and interactions received from Slack, by kind.", "kind"),
		rebooted:         vec("rebootbot_instances_rebooted_total", "Instances whose reboot finished, by result.", "result"),
		tasksDropped:     counter("rebootbot_background_tasks_dropped_total", "Background tasks not started because the bot was shutting down."),
		ack: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rebootbot_ack_seconds",
			Help:    "Time from receiving a command or interaction to answering Slack.",
			Buckets: ackBuckets,
		}, []string{"kind"}),
		storeWrites:  vec("rebootbot_store_writes_total", "Writes committed to the bbolt store, by queue (urgent: clicks and commands).", "queue"),
		storeCommits: vec("rebootbot_store_transactions_total", "Write transactions committed to the bbolt store, by queue.", "queue"),
		storeCommit: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rebootbot_store_commit_seconds",
			Help:    "Time from a bbolt write transaction's start until it was durable, by queue.",
			Buckets: commitBuckets,
		}, []string{"queue"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.cardsPosted, m.requests, m.approvals, m.refusals, m.auditEvents,
		m.signatureRejects, m.badRequests, m.cloudCalls, m.cloudErrors,
		m.slackCalls, m.deliveries, m.rebooted, m.tasksDropped, m.ack,
		m.storeWrites, m.storeCommits, m.storeCommit,
	)
	return m
}

// Handler serves the metrics in the Prometheus exposition format to GET
// and HEAD.
func (m *Metrics) Handler() http.Handler {
	var h http.Handler = http.NotFoundHandler()
	if m != nil {
		h = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// ObserveEvent counts a stored audit event; pass it as the engine's
// Observer.
func (m *Metrics) ObserveEvent(e *approval.Event) {
	if m == nil || e == nil {
		return
	}
	m.auditEvents.WithLabelValues(fixed(string(e.Type), eventTypes)).Inc()
	switch e.Type {
	case approval.EventApproved:
		m.approvals.Inc()
	case approval.EventApprovalRefused:
		m.refusals.Inc()
	case approval.EventRejected:
		m.requests.WithLabelValues("rejected").Inc()
	case approval.EventDenied:
		m.requests.WithLabelValues("denied").Inc()
	case approval.EventCancelled:
		m.requests.WithLabelValues("cancelled").Inc()
	case approval.EventExpired:
		m.requests.WithLabelValues("expired").Inc()
	case approval.EventCompleted:
		m.requests.WithLabelValues(outcomeLabel(e.Details.Outcome)).Inc()
	case approval.EventInstanceSucceeded:
		m.rebooted.WithLabelValues("succeeded").Add(float64(max(1, len(e.Instances))))
	case approval.EventInstanceFailed:
		m.rebooted.WithLabelValues("failed").Add(float64(max(1, len(e.Instances))))
	}
}

// CardPosted counts a request whose approval card Slack has taken.
func (m *Metrics) CardPosted() {
	if m != nil {
		m.cardsPosted.Inc()
	}
}

// CloudCall counts one Tencent Cloud API call; code is "" on success or
// Tencent's error code. It fits cloud.Config.OnCall.
func (m *Metrics) CloudCall(action, code string) {
	if m == nil {
		return
	}
	action = fixed(action, cloudActions)
	if code == "" {
		m.cloudCalls.WithLabelValues(action, "ok").Inc()
		return
	}
	if m.cloudCodes == nil || !m.cloudCodes(code) {
		code = other
	}
	m.cloudCalls.WithLabelValues(action, code).Inc()
	m.cloudErrors.WithLabelValues(action, code).Inc()
}

// SignatureRejected counts a request refused for its signature.
func (m *Metrics) SignatureRejected(reason string) {
	if m != nil {
		m.signatureRejects.WithLabelValues(fixed(reason, signatureReasons)).Inc()
	}
}

// BadRequest counts a request refused as oversize or malformed.
func (m *Metrics) BadRequest(reason string) {
	if m != nil {
		m.badRequests.WithLabelValues(fixed(reason, badRequestReasons)).Inc()
	}
}

// SlackCall counts one Slack Web API call and its result: "ok" or the
// error.
func (m *Metrics) SlackCall(method, result string) {
	if m == nil {
		return
	}
	if !isHTTPStatus(result) {
		result = fixed(result, slackResults)
	}
	m.slackCalls.WithLabelValues(fixed(method, slackMethods), result).Inc()
}

// Delivery counts a command or interaction received from Slack; kind is
// "command" or "interaction:" and the interaction's type.
func (m *Metrics) Delivery(kind string) {
	if m == nil {
		return
	}
	if _, ok := deliveryKinds[kind]; !ok {
		if strings.HasPrefix(kind, "interaction:") {
			kind = "interaction:" + other
		} else {
			kind = other
		}
	}
	m.deliveries.WithLabelValues(kind).Inc()
}

// TaskDropped counts background work refused during shutdown.
func (m *Metrics) TaskDropped() {
	if m != nil {
		m.tasksDropped.Inc()
	}
}

// ObserveAck records how long answering a delivery of kind ("command" or
// "interaction") took.
func (m *Metrics) ObserveAck(kind string, d time.Duration) {
	if m != nil {
		m.ack.WithLabelValues(fixed(kind, ackKinds)).Observe(d.Seconds())
	}
}

// StoreCommit records a committed bbolt write transaction of writes
// writes, urgent when they were writes someone waits on, that took took.
func (m *Metrics) StoreCommit(urgent bool, writes int, took time.Duration) {
	if m == nil {
		return
	}
	q := "background"
	if urgent {
		q = "urgent" // clicks and commands
	}
	m.storeWrites.WithLabelValues(q).Add(float64(writes))
	m.storeCommits.WithLabelValues(q).Inc()
	m.storeCommit.WithLabelValues(q).Observe(took.Seconds())
}
