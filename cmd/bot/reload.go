package main

import (
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"rebootbot/approval"
	"rebootbot/approval/policyfile"
)

// policySetter puts a policy in force: an engine, or every engine of a
// replica.
type policySetter interface {
	SetPolicy(*approval.Policy) error
}

// policySetters puts a policy in force on each of its setters in turn.
type policySetters []policySetter

func (ps policySetters) SetPolicy(p *approval.Policy) error {
	for _, s := range ps {
		if err := s.SetPolicy(p); err != nil {
			return err
		}
	}
	return nil
}

// reloadOnHangup reloads the policy file each time the process gets
// SIGHUP, until the returned stop is called.
func reloadOnHangup(getenv func(string) string, engine policySetter, log *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-hup:
				reloadPolicy(getenv, engine, log)
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
		<-finished
	}
}

// reloadPolicy reads the policy file again and puts it in force when it
// is valid; otherwise the policy in force stays and the log says why.
// Open requests are judged by the new policy from their next click or
// execution on.
func reloadPolicy(getenv func(string) string, engine policySetter, log *slog.Logger) {
	path := strings.TrimSpace(getenv("BOT_POLICY"))
	if path == "" {
		log.Warn("SIGHUP: nothing to reload: BOT_POLICY is not set, and BOT_APPROVERS is read only at start-up")
		return
	}
	p, _, err := policyfile.FromEnv(getenv)
	if err == nil {
		err = engine.SetPolicy(p)
	}
	if err != nil {
		log.Error("SIGHUP: policy file not reloaded; the policy in force stays", "file", path, "err", err.Error())
		return
	}
	log.Info("SIGHUP: policy file reloaded", "file", path, "approvers", len(p.Approvers), "rules", len(p.Rules),
		"min_approvals", p.MinApprovals, "hard_min_approvals", p.HardMinApprovals, "allow_self_approval", p.AllowSelfApproval)
}
