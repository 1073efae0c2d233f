package approval

import "context"

// Notifier tells people in Slack what happens to a request. Every method may
// be called again with the same request after a failure or a restart; it
// must then bring Slack to the same result, not add a second one.
//
// The notifier decides what is worth trying again and how soon. An error
// it returns means the notice is still owed, and the engine asks again
// later; an *Error of kind Gone means it can never be delivered (the card
// was deleted, the channel archived, the token refused): the engine stops
// owing it and records so in the audit log. Before returning Gone, the
// notifier tells the requester what it could not show, wherever it still
// can.
type Notifier interface {
	// PostCard posts r's approval card in r.Channel and returns where it is.
	// If the bot cannot post there (not in the channel, channel not found)
	// it returns an *Error of kind Forbidden whose message tells the user
	// what to do; the engine then rejects the request.
	PostCard(ctx context.Context, r *Request) (Card, error)
	// UpdateCard makes r's card show r as it is now.
	UpdateCard(ctx context.Context, r *Request) error
	// Report posts one progress message in r's card thread.
	Report(ctx context.Context, r *Request, rep Report) error
}

// ReportKind says which progress message a Report is.
type ReportKind string

const (
	ReportStarted  ReportKind = "started"  // execution began
	ReportInstance ReportKind = "instance" // one instance's result
	ReportFinished ReportKind = "finished" // the summary
	// ReportWave is one finished wave's result, naming its failures: a
	// rolling request of more than MaxInstanceReports instances gets one
	// per wave instead of one per instance.
	ReportWave ReportKind = "wave"
)

// Report is one message for a request's thread.
type Report struct {
	Kind ReportKind
	Run  *Run // for ReportInstance
	Wave int  // for ReportWave, 1-based
}

// Groups resolves Slack user groups (S…) to their members.
type Groups interface {
	Members(ctx context.Context, group string) ([]string, error)
}
