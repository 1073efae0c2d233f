package metrics

import (
	"strings"

	"rebootbot/approval"
)

// The fixed sets of label values. A value outside its set is counted as
// "other".
var (
	eventTypes = set(
		approval.EventRequested, approval.EventRejected, approval.EventApproved,
		approval.EventApprovalRefused, approval.EventDenied, approval.EventCancelled,
		approval.EventExpired, approval.EventExecuting, approval.EventRebootIntent,
		approval.EventRebootCalled, approval.EventInstanceSucceeded, approval.EventInstanceFailed,
		approval.EventCompleted, approval.EventWaveStarted, approval.EventWaveFinished, approval.EventStopped,
	)
	outcomes          = set("succeeded", "failed", "partially_failed", "rejected", "denied", "cancelled", "expired", "stopped")
	signatureReasons  = set("no_secret", "missing", "malformed", "stale", "future", "mismatch", "error")
	badRequestReasons = set("oversize", "unreadable", "malformed")
	cloudActions      = set("DescribeInstances", "RebootInstances")
	ackKinds          = set("command", "interaction")
	deliveryKinds     = set(
		"command",
		"interaction:block_actions", "interaction:view_submission", "interaction:view_closed",
		"interaction:shortcut", "interaction:message_action",
	)
	slackMethods = set(
		"auth.test", "chat.postMessage", "chat.postEphemeral", "chat.update",
		"conversations.history", "conversations.replies", "usergroups.users.list",
		"views.open", "response_url", "apps.connections.open",
	)
	// slackResults are the results the bot's Slack client reports besides
	// an HTTP status: its own classes and the Slack errors it may meet.
	slackResults = set(
		"ok", "ratelimited", "canceled", "timeout", "network", "error",
		"internal_error", "fatal_error", "service_unavailable", "request_timeout",
		"not_in_channel", "channel_not_found", "is_archived", "message_not_found",
		"cant_update_message", "edit_window_closed", "msg_too_long", "invalid_blocks",
		"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
		"missing_scope", "no_permission", "not_allowed_token_type", "ekm_access_denied",
		"expired_trigger_id", "invalid_trigger_id", "exchanged_trigger_id",
		"no_such_subteam", "invalid_arguments", "user_not_in_channel", "user_not_found",
	)
)

func set[T ~string](values ...T) map[string]struct{} {
	m := make(map[string]struct{}, len(values))
	for _, v := range values {
		m[string(v)] = struct{}{}
	}
	return m
}

// fixed returns v when it is in the set, else "other".
func fixed(v string, in map[string]struct{}) string {
	if _, ok := in[v]; ok {
		return v
	}
	return other
}

// outcomeLabel turns "Partially failed" or "PARTIALLY_FAILED" into
// "partially_failed"; an outcome outside the set is "other".
func outcomeLabel(s string) string {
	s = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), " ", "_")
	return fixed(s, outcomes)
}

// isHTTPStatus reports whether result names an HTTP status, as the Slack
// client reports a non-2xx answer: http_ and three digits.
func isHTTPStatus(result string) bool {
	code, ok := strings.CutPrefix(result, "http_")
	return ok && len(code) == 3 && code[0] >= '1' && code[0] <= '5' &&
		code[1] >= '0' && code[1] <= '9' && code[2] >= '0' && code[2] <= '9'
}
