package bot

import "time"

// Metrics is what the Slack side counts. The program owns the metrics
// (rebootbot/metrics) and passes them in; nil counts nothing.
type Metrics interface {
	// SignatureRejected counts a request refused for its signature.
	SignatureRejected(reason string)
	// BadRequest counts a request refused as oversize or malformed.
	BadRequest(reason string)
	// SlackCall counts one Web API call and its result ("ok" or the error).
	SlackCall(method, result string)
	// Delivery counts a command ("command") or an interaction
	// ("interaction:" and its type) received from Slack.
	Delivery(kind string)
	// TaskDropped counts background work refused during shutdown.
	TaskDropped()
	// ObserveAck records how long answering a delivery of kind took.
	ObserveAck(kind string, d time.Duration)
	// CardPosted counts a request whose approval card Slack has taken.
	CardPosted()
}

// noMetrics counts nothing.
type noMetrics struct{}

func (noMetrics) SignatureRejected(string)         {}
func (noMetrics) BadRequest(string)                {}
func (noMetrics) SlackCall(string, string)         {}
func (noMetrics) Delivery(string)                  {}
func (noMetrics) TaskDropped()                     {}
func (noMetrics) ObserveAck(string, time.Duration) {}
func (noMetrics) CardPosted()                      {}
