package approval

import (
	"errors"
	"fmt"
)

// Kind classifies an error so that each adapter can answer it properly
// (an ephemeral sentence, an HTTP status, an exit code).
type Kind string

const (
	Invalid     Kind = "invalid"     // bad input; nothing changed
	NotFound    Kind = "not_found"   // no such request
	Conflict    Kind = "conflict"    // the request is not in a state that allows this
	Forbidden   Kind = "forbidden"   // the user may not do this
	Unavailable Kind = "unavailable" // the cloud or Slack could not be reached; retry later
	Gone        Kind = "gone"        // what a notice was for is gone for good (a deleted card, an archived channel, a refused token); stop owing it
	Internal    Kind = "internal"    // a bug or a broken store
)

// Error is an error with a kind and a message safe to show a Slack user.
// Err, when set, holds the underlying cause for logs.
type Error struct {
	Kind    Kind
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Message, e.Err)
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of kind k with a formatted message.
func Errorf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// ErrorKind returns the kind of err, Internal when it has none.
func ErrorKind(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// ErrorMessage returns the sentence to show a user for err. Errors without
// a kind are internal; their details stay in the logs.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "Something went wrong inside rebootbot; the details are in its log."
}

// NotRecordedMessage is what a user is told when the store did not take a
// change in time and the change was certainly not written.
const NotRecordedMessage = "rebootbot's store did not answer in time, so nothing was recorded. Try again in a moment."

// UnconfirmedMessage is what a user is told when a change was on its way
// into the store when the wait for it ended: it may have been recorded or
// not, and only the card shows which.
const UnconfirmedMessage = "Your action may not have been recorded: rebootbot's store did not confirm it in time. Look at the card (or `/reboot status`) before trying again."

// NotRecorded returns the Unavailable error for a change the store
// certainly did not write because its caller stopped waiting first.
func NotRecorded(err error) *Error {
	return &Error{Kind: Unavailable, Message: NotRecordedMessage, Err: err}
}

// Unconfirmed returns the Unavailable error for a change whose outcome is
// not known: its transaction was on its way when its caller stopped
// waiting, so it may have committed. Saying that nothing was recorded
// would be untrue when it did.
func Unconfirmed(err error) *Error {
	return &Error{Kind: Unavailable, Message: UnconfirmedMessage, Err: err}
}
