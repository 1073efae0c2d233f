//go:build e2e

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/bot"
	"rebootbot/cloud/emulator"
)

// Instances of the policy tests: one tagged env: prod, one env: staging.
const (
	prodInstance    = "ins-prod0001"
	stagingInstance = "ins-stag0001"
	otherInstance   = "ins-othr0001"
)

func policyInstances() []emulator.Instance {
	return []emulator.Instance{
		{ID: prodInstance, Name: "web-prod", Tags: map[string]string{"env": "prod"}},
		{ID: stagingInstance, Name: "web-staging", Tags: map[string]string{"env": "staging"}},
		{ID: otherInstance, Name: "batch", Tags: map[string]string{"env": "staging"}},
	}
}

// mustWritePolicy writes the policy file at path.
func mustWritePolicy(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// hangup sends SIGHUP to the running bot and waits until its log has one
// more line containing want.
func (w *world) hangup(want string) string {
	w.t.Helper()
	before := w.logLines(want)
	if err := w.current().cmd.Process.Signal(syscall.SIGHUP); err != nil {
		w.t.Fatalf("SIGHUP: %v", err)
	}
	var line string
	w.waitUntil("the bot to log "+want, func() bool {
		lines := w.logLines(want)
		if len(lines) > len(before) {
			line = lines[len(lines)-1]
			return true
		}
		return false
	})
	return line
}

// logLines returns the lines of the bot's log that contain s.
func (w *world) logLines(s string) []string {
	data, _ := os.ReadFile(w.logPath)
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// TestPolicyReloadOnHangup: SIGHUP puts an edited policy file in force
// for open requests: a new deny rule ends an older pending prod request
// without a reboot, and an approver taken off the file can no longer
// approve. A bad file keeps the policy in force and logs why.
func TestPolicyReloadOnHangup(t *testing.T) {
	t.Parallel()
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	mustWritePolicy(t, policy, "approvers: [UAPPROVER1, UAPPROVER2]\nmin_approvals: 1\n")
	w := newWorld(t, worldConfig{Instances: policyInstances(), Env: map[string]string{"BOT_POLICY": policy, "BOT_APPROVERS": ""}})
	w.start()
	staging := w.mustRequest([]string{stagingInstance})
	prod := w.mustRequest([]string{prodInstance})

	mustWritePolicy(t, policy, "approvers: [UAPPROVER2]\nmin_approvals: 1\nrules:\n  - tags: {env: prod}\n    deny: true\n")
	if line := w.hangup("policy file reloaded"); !strings.Contains(line, `"approvers":1`) || !strings.Contains(line, `"rules":1`) {
		t.Errorf("reload logged %s", line)
	}

	// The pending prod request ends at once, without a click.
	if got := w.waitSettled(prod); got != "Denied" {
		t.Errorf("%s ended %q, want Denied", prod, got)
	}
	card := w.mustCard(prod)
	if !strings.Contains(card.Blocks, "does not allow rebooting "+prodInstance) {
		t.Errorf("the card of %s does not say why it was denied: %s", prod, card.Blocks)
	}
	late := approve(w, approver2, prod)
	w.waitReply(late, prod+" is already denied")
	removed := approve(w, approver1, staging)
	w.waitReply(removed, "You are not one of the approvers of "+staging)

	mustWritePolicy(t, policy, "approvers: [UAPPROVER1, UAPPROVER2]\nmin_approvals: 1\nfrobnicate: yes\n")
	line := w.hangup("policy file not reloaded")
	if !strings.Contains(line, `policy.yaml:3: unknown key \"frobnicate\"`) || !strings.Contains(line, `"level":"ERROR"`) {
		t.Errorf("a bad file was logged as %s", line)
	}
	again := approve(w, approver1, staging)
	w.waitReply(again, "You are not one of the approvers of "+staging)
	approve(w, approver2, staging)
	if got := w.waitSettled(staging); got != "Succeeded" {
		t.Errorf("%s ended %q, want Succeeded", staging, got)
	}
	if n := w.emu.RebootCalls(prodInstance); n != 0 {
		t.Errorf("%s received %d reboot calls after a deny rule protected it, want none", prodInstance, n)
	}
	w.checkWorld([]string{staging, prod}, checkOptions{RebootOnce: true})
	events := w.mustEvents()
	var botDenied bool
	for _, e := range events {
		if e.RequestID == prod && e.Type == approval.EventDenied && e.Actor == approval.ActorBot && strings.Contains(e.Details.Note, prodInstance) {
			botDenied = true
		}
	}
	if !botDenied {
		t.Errorf("no denied event by the bot naming %s for %s", prodInstance, prod)
	}
}

// TestHangupWithoutPolicyFile: with the policy from BOT_APPROVERS, SIGHUP
// says there is nothing to reload, and the bot goes on.
func TestHangupWithoutPolicyFile(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldConfig{Instances: policyInstances()})
	w.start()
	w.hangup("SIGHUP: nothing to reload")
	id := w.mustRequest([]string{stagingInstance})
	approve(w, approver1, id)
	if got := w.waitSettled(id); got != "Succeeded" {
		t.Errorf("%s ended %q, want Succeeded", id, got)
	}
	w.checkWorld([]string{id}, checkOptions{RebootOnce: true})
}

// TestExecutionRecheckedAfterRestart: the bot dies after the last
// approval and before any reboot call; it comes back with a policy file
// that now denies prod instances, and the request ends denied by the bot
// instead of rebooting.
func TestExecutionRecheckedAfterRestart(t *testing.T) {
	t.Parallel()
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	mustWritePolicy(t, policy, "approvers: [UAPPROVER1, UAPPROVER2]\nmin_approvals: 1\n")
	w := newWorld(t, worldConfig{Instances: policyInstances(), Env: map[string]string{"BOT_POLICY": policy, "BOT_APPROVERS": ""}})
	w.start()
	id := w.mustRequest([]string{prodInstance, stagingInstance})
	// The check right before the call hangs, so the bot dies with the
	// approval stored and nothing called.
	described := w.emu.Calls("DescribeInstances")
	w.emu.SetFaults(emulator.Fault{Action: "DescribeInstances", Latency: time.Minute})
	approve(w, approver1, id)
	w.waitUntil("the execution to look the instances up", func() bool { return w.emu.Calls("DescribeInstances") > described })
	w.kill()
	w.emu.SetFaults()

	mustWritePolicy(t, policy, "approvers: [UAPPROVER1, UAPPROVER2]\nmin_approvals: 1\nrules:\n  - tags: {env: prod}\n    deny: true\n")
	w.start()
	if got := w.waitSettled(id); got != "Denied" {
		t.Fatalf("%s ended %q, want Denied", id, got)
	}
	for _, in := range []string{prodInstance, stagingInstance} {
		if n := w.emu.RebootCalls(in); n != 0 {
			t.Errorf("%s received %d reboot calls, want none", in, n)
		}
	}
	w.stop()
	w.mustVerify()
	var denied []approval.Event
	for _, e := range w.mustEvents() {
		if e.RequestID == id && (e.Type == approval.EventDenied || e.Type == approval.EventRebootCalled || e.Type == approval.EventRebootIntent) {
			denied = append(denied, e)
		}
	}
	if len(denied) != 1 || denied[0].Type != approval.EventDenied || denied[0].Actor != approval.ActorBot || !strings.Contains(denied[0].Details.Note, prodInstance) {
		t.Errorf("events after the restart = %+v, want one denied by the bot naming %s", denied, prodInstance)
	}
}

// TestClickFromLostDatabaseCard: after the database is lost, request
// numbers start again; a click on the card of the old R-1 must not
// approve the new R-1, whose instances the approver never saw.
func TestClickFromLostDatabaseCard(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldConfig{Instances: policyInstances()})
	w.start()
	old := w.mustRequest([]string{stagingInstance})
	oldCard := w.mustCard(old)
	w.kill()
	if err := os.Remove(w.db); err != nil {
		t.Fatal(err)
	}
	w.start()
	fresh := w.mustRequest([]string{otherInstance})
	if fresh != old {
		t.Fatalf("the new request is %s, want the number %s again", fresh, old)
	}
	d := w.click(approver1, bot.ActionApprove, old, oldCard.TS)
	w.mustSend(d)
	w.waitReply(d, "This is not the current card of "+fresh)
	// The click changed nothing: the new request still waits, and its own
	// card works.
	if n := w.emu.RebootCalls(otherInstance); n != 0 {
		t.Errorf("%s received %d reboot calls from a click on another request's card", otherInstance, n)
	}
	approve(w, approver2, fresh)
	if got := w.waitSettled(fresh); got != "Succeeded" {
		t.Errorf("%s ended %q, want Succeeded", fresh, got)
	}
	if n := w.emu.RebootCalls(otherInstance); n != 1 {
		t.Errorf("%s received %d reboot calls, want 1", otherInstance, n)
	}
	if n := w.emu.RebootCalls(stagingInstance); n != 0 {
		t.Errorf("%s received %d reboot calls, want none", stagingInstance, n)
	}
}
