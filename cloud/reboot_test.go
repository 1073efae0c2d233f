package cloud

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/cloud/emulator"
	"rebootbot/cloud/emulator/emulatortest"
	"rebootbot/internal/testutil"
)

func TestRebootBatchesOf100(t *testing.T) {
	ins := emulator.Generate(250, 1)
	r := mustRig(t, emulator.Config{}, nil, ins...)
	res := mustReboot(t, r.cvm, idsOf(ins), approval.Hard)

	if got := r.emu.Calls(ActionReboot); got != 3 {
		t.Errorf("RebootInstances calls = %d, want 3", got)
	}
	var sizes []int
	for _, c := range r.answered(ActionReboot) {
		sizes = append(sizes, len(c.InstanceIDs))
	}
	if want := []int{100, 100, 50}; !slices.Equal(sizes, want) {
		t.Errorf("batch sizes = %v, want %v", sizes, want)
	}
	for i, got := range res {
		if got.InstanceID != ins[i].ID {
			t.Fatalf("result %d is for %s, want %s (the order asked)", i, got.InstanceID, ins[i].ID)
		}
		if got.Err != nil {
			t.Errorf("%s: %v", got.InstanceID, got.Err)
		}
		st := r.status(t, got.InstanceID)
		if st.LatestOperationRequestID != got.RequestID || got.RequestID == "" {
			t.Errorf("%s: RequestID %q, emulator's latest operation %q", got.InstanceID, got.RequestID, st.LatestOperationRequestID)
		}
		if n := r.emu.RebootCalls(got.InstanceID); n != 1 {
			t.Errorf("%s rebooted %d times, want 1", got.InstanceID, n)
		}
	}
}

func TestRebootDeduplicates(t *testing.T) {
	r := mustRig(t, emulator.Config{}, nil, running(2)...)
	ids := []string{"ins-00000001", "ins-00000002", "ins-00000001"}
	res, err := r.cvm.Reboot(t.Context(), "", ids, approval.Soft)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 {
		t.Errorf("%d results, want one per distinct ID (2)", len(res))
	}
	if n := r.emu.RebootCalls("ins-00000001"); n != 1 {
		t.Errorf("ins-00000001 rebooted %d times, want 1", n)
	}
}

func TestRebootIsolatesBadInstances(t *testing.T) {
	tests := []struct {
		name string
		// states of ins-00000001..5; "" = RUNNING
		states     []string
		extra      []string          // IDs that are not in the emulator
		wantErr    map[string]string // instance → code; the rest must be rebooted
		wantReboot int               // RebootInstances calls
	}{
		{name: "Stopped", states: []string{"", "", "STOPPED", "", ""},
			wantErr:    map[string]string{"ins-00000003": "UnsupportedOperation.InstanceStateStopped"},
			wantReboot: 2},
		{name: "AlreadyRebooting", states: []string{"REBOOTING", "", "", "", ""},
			wantErr:    map[string]string{"ins-00000001": "UnsupportedOperation.InstanceStateRebooting"},
			wantReboot: 2},
		{name: "NotFound", states: []string{"", "", "", "", ""}, extra: []string{"ins-zzzzzzzz"},
			wantErr:    map[string]string{"ins-zzzzzzzz": "InvalidInstanceId.NotFound"},
			wantReboot: 2},
		{name: "Malformed", states: []string{"", "", "", "", ""}, extra: []string{"ins-NOPE"},
			wantErr:    map[string]string{"ins-NOPE": "InvalidInstanceId.Malformed"},
			wantReboot: 2},
		{name: "SeveralKinds", states: []string{"STOPPED", "", "TERMINATING", "", "STOPPED"}, extra: []string{"ins-zzzzzzzz"},
			wantErr: map[string]string{
				"ins-00000001": "UnsupportedOperation.InstanceStateStopped",
				"ins-00000005": "UnsupportedOperation.InstanceStateStopped",
				"ins-00000003": "UnsupportedOperation.InstanceStateTerminating",
				"ins-zzzzzzzz": "InvalidInstanceId.NotFound",
			},
			wantReboot: 4},
		{name: "AllBad", states: []string{"STOPPED", "STOPPED", "STOPPED", "STOPPED", "STOPPED"},
			wantErr: map[string]string{
				"ins-00000001": "UnsupportedOperation.InstanceStateStopped",
				"ins-00000002": "UnsupportedOperation.InstanceStateStopped",
				"ins-00000003": "UnsupportedOperation.InstanceStateStopped",
				"ins-00000004": "UnsupportedOperation.InstanceStateStopped",
				"ins-00000005": "UnsupportedOperation.InstanceStateStopped",
			},
			wantReboot: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ins := running(len(tt.states))
			for i, s := range tt.states {
				ins[i].State = s
			}
			r := mustRig(t, emulator.Config{RebootDuration: time.Hour}, nil, ins...)
			ids := append(idsOf(ins), tt.extra...)
			res := mustReboot(t, r.cvm, ids, approval.Soft)

			refusals := map[string]emulator.Call{} // RequestId → refusing call
			for _, c := range r.answered(ActionReboot) {
				if c.ErrorCode != "" {
					refusals[c.RequestID] = c
				}
			}
			for _, got := range res {
				wantCode, bad := tt.wantErr[got.InstanceID]
				switch {
				case bad && (got.Err == nil || got.Err.Code != wantCode):
					t.Errorf("%s: error %v, want %s", got.InstanceID, got.Err, wantCode)
				case bad:
					call, ok := refusals[got.RequestID]
					if !ok || call.ErrorCode != wantCode || !slices.Contains(call.InstanceIDs, got.InstanceID) {
						t.Errorf("%s: RequestID %s is not the call that refused it with %s", got.InstanceID, got.RequestID, wantCode)
					}
					if got.Err.Explanation == "" || got.Err.Transient {
						t.Errorf("%s: error %+v, want a permanent error with an explanation", got.InstanceID, got.Err)
					}
				case got.Err != nil:
					t.Errorf("%s: unexpected error %v", got.InstanceID, got.Err)
				default:
					if st := r.status(t, got.InstanceID); st.LatestOperationRequestID != got.RequestID {
						t.Errorf("%s: RequestID %s, but its reboot was %s", got.InstanceID, got.RequestID, st.LatestOperationRequestID)
					}
				}
			}
			for _, in := range ins {
				want := 1
				if _, bad := tt.wantErr[in.ID]; bad {
					want = 0
				}
				if n := r.emu.RebootCalls(in.ID); n != want {
					t.Errorf("%s rebooted %d times, want %d", in.ID, n, want)
				}
			}
			if got := r.emu.Calls(ActionReboot); got != tt.wantReboot {
				t.Errorf("RebootInstances calls = %d, want %d", got, tt.wantReboot)
			}
		})
	}
}

func TestRebootBisectsUnexplainedRefusals(t *testing.T) {
	tests := []struct {
		name       string
		fault      emulator.Fault
		wantOK     int // instances rebooted
		wantReboot int // RebootInstances calls
	}{
		// Refused twice without naming anyone, all instances RUNNING: the
		// batch is split, then the refused half again, until every
		// instance went through exactly once.
		{"InstanceSpecific", emulator.Fault{Action: ActionReboot, Code: "OperationDenied.InstanceOperationInProgress", Count: 2}, 4, 5},
		// A refusal that may concern the whole call: when both halves are
		// refused alike, nobody is tried again.
		{"Ambiguous", emulator.Fault{Action: ActionReboot, Code: "UnauthorizedOperation", Count: 3}, 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ins := running(4)
			r := mustRig(t, emulator.Config{RebootDuration: time.Hour}, nil, ins...)
			r.emu.SetFaults(tt.fault)
			res, _ := r.cvm.Reboot(t.Context(), "", idsOf(ins), approval.Soft)
			ok := 0
			for _, got := range res {
				if got.Err == nil {
					ok++
				} else if got.Err.Code != tt.fault.Code {
					t.Errorf("%s: code %s, want %s", got.InstanceID, got.Err.Code, tt.fault.Code)
				}
			}
			if ok != tt.wantOK {
				t.Errorf("%d instances rebooted, want %d", ok, tt.wantOK)
			}
			for _, in := range ins {
				if n := r.emu.RebootCalls(in.ID); n > 1 {
					t.Errorf("%s rebooted %d times", in.ID, n)
				}
			}
			if got := r.emu.Calls(ActionReboot); got != tt.wantReboot {
				t.Errorf("RebootInstances calls = %d, want %d", got, tt.wantReboot)
			}
		})
	}
}

func TestRebootRetriesTransientErrors(t *testing.T) {
	tests := []struct {
		code  string
		count int
	}{
		{"RequestLimitExceeded", 2},
		{"RequestLimitExceeded.UinLimitExceeded", 1},
		{"InternalError", 2},
		{"InternalServerError", 1},
		{"ServiceUnavailable", 1},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			ins := running(3)
			r := mustRig(t, emulator.Config{RebootDuration: time.Hour}, nil, ins...)
			r.emu.SetFaults(emulator.Fault{Action: ActionReboot, Code: tt.code, Count: tt.count})
			res := mustReboot(t, r.cvm, idsOf(ins), approval.SoftFirst)

			calls := r.answered(ActionReboot)
			if len(calls) != tt.count+1 {
				t.Fatalf("RebootInstances calls = %d, want %d", len(calls), tt.count+1)
			}
			seen := map[string]bool{}
			for i, c := range calls {
				if seen[c.RequestID] {
					t.Errorf("attempt %d reused RequestId %s", i, c.RequestID)
				}
				seen[c.RequestID] = true
			}
			last := calls[len(calls)-1]
			for _, got := range res {
				if got.Err != nil || got.RequestID != last.RequestID {
					t.Errorf("%s: %+v, want accepted by %s", got.InstanceID, got, last.RequestID)
				}
				if n := r.emu.RebootCalls(got.InstanceID); n != 1 {
					t.Errorf("%s rebooted %d times, want 1", got.InstanceID, n)
				}
			}
			want := append(slices.Repeat([]string{tt.code}, tt.count), "")
			if got := r.calls.of(ActionReboot); !slices.Equal(got, want) {
				t.Errorf("OnCall codes = %q, want %q", got, want)
			}
		})
	}
}

func TestRetriesSignAfresh(t *testing.T) {
	ins := running(1)
	r := mustRig(t, emulator.Config{RebootDuration: time.Hour}, nil, ins...)
	p := mustProxy(t, r.url)
	cfg := r.testConfig(p.srv.URL)
	// One retry, waiting long enough that the clock moves to another
	// second: a resent request would carry the old timestamp.
	cfg.BaseDelay, cfg.MaxDelay = 1100*time.Millisecond, 1100*time.Millisecond
	c := mustNew(t, cfg)
	c.jitter = func(d time.Duration) time.Duration { return d }
	r.emu.SetFaults(emulator.Fault{Action: ActionReboot, Code: "RequestLimitExceeded", Count: 1})

	res := mustReboot(t, c, idsOf(ins), approval.Soft)
	if res[0].Err != nil {
		t.Fatalf("Reboot: %v", res[0].Err)
	}
	reqs := p.requests(ActionReboot)
	if len(reqs) != 2 {
		t.Fatalf("%d RebootInstances requests, want 2", len(reqs))
	}
	first, second := reqs[0], reqs[1]
	if first.Get("X-TC-Timestamp") == second.Get("X-TC-Timestamp") {
		t.Errorf("both attempts carry timestamp %s", first.Get("X-TC-Timestamp"))
	}
	if first.Get("Authorization") == second.Get("Authorization") {
		t.Error("both attempts carry the same signature")
	}
	calls := r.answered(ActionReboot)
	if len(calls) != 2 || calls[0].RequestID == calls[1].RequestID {
		t.Errorf("emulator calls %+v, want two with distinct RequestIds", calls)
	}
}

func TestRebootPermanentErrorsNotRetried(t *testing.T) {
	const badKey = "not-the-secret-key-at-all"
	tests := []struct {
		name        string
		mod         func(*Config)
		fault       *emulator.Fault
		wantCode    string
		wantCallErr bool // Reboot's own error is set (nothing could be tried)
		wantCalls   map[string]int
	}{
		{name: "BadSignature", mod: func(c *Config) { c.SecretKey = badKey },
			wantCode: "AuthFailure.SignatureFailure", wantCallErr: true,
			wantCalls: map[string]int{ActionDescribe: 1, ActionReboot: 0}},
		{name: "UnknownKey", mod: func(c *Config) { c.SecretID = "AKIDunknown00" },
			wantCode: "AuthFailure.SecretIdNotFound", wantCallErr: true,
			wantCalls: map[string]int{ActionDescribe: 1, ActionReboot: 0}},
		{name: "RebootAuthFailure", fault: &emulator.Fault{Action: ActionReboot, Code: "AuthFailure.SignatureExpire"},
			wantCode: "AuthFailure.SignatureExpire", wantCallErr: true,
			wantCalls: map[string]int{ActionDescribe: 1, ActionReboot: 1}},
		{name: "ParameterCombination", fault: &emulator.Fault{Action: ActionReboot, Code: "InvalidParameterCombination"},
			wantCode: "InvalidParameterCombination", wantCallErr: true,
			wantCalls: map[string]int{ActionDescribe: 1, ActionReboot: 1}},
		{name: "MFA", fault: &emulator.Fault{Action: ActionReboot, Code: "UnauthorizedOperation.MFAExpired", Count: 1},
			wantCode: "UnauthorizedOperation.MFAExpired", wantCallErr: true,
			wantCalls: map[string]int{ActionDescribe: 1, ActionReboot: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ins := running(1)
			r := mustRig(t, emulator.Config{}, tt.mod, ins...)
			if tt.fault != nil {
				r.emu.SetFaults(*tt.fault)
			}
			res, err := r.cvm.Reboot(t.Context(), "", idsOf(ins), approval.Soft)
			if (err != nil) != tt.wantCallErr {
				t.Errorf("Reboot error = %v, want error: %v", err, tt.wantCallErr)
			}
			if len(res) != 1 || res[0].Err == nil {
				t.Fatalf("results = %+v, want one failure", res)
			}
			got := res[0].Err
			if got.Code != tt.wantCode || got.Transient || got.Explanation == "" {
				t.Errorf("error = %+v, want permanent %s with an explanation", got, tt.wantCode)
			}
			for action, want := range tt.wantCalls {
				if n := r.emu.Calls(action); n != want {
					t.Errorf("%s calls = %d, want %d", action, n, want)
				}
			}
			for _, text := range []string{fmt.Sprint(err), got.Message, got.Explanation, r.log.String()} {
				if strings.Contains(text, badKey) || strings.Contains(text, emulatortest.SecretKey) {
					t.Errorf("a secret leaked: %q", text)
				}
			}
			if n := r.emu.RebootCalls(ins[0].ID); n != 0 {
				t.Errorf("instance rebooted %d times, want 0", n)
			}
		})
	}
}

func TestRebootSignatureRejectionInPlainWords(t *testing.T) {
	r := mustRig(t, emulator.Config{}, func(c *Config) { c.SecretKey = "wrong" }, running(2)...)
	res, err := r.cvm.Reboot(t.Context(), "", idsOf(running(2)), approval.Soft)
	if approval.ErrorKind(err) != approval.Forbidden {
		t.Errorf("kind = %s, want forbidden", approval.ErrorKind(err))
	}
	msg := approval.ErrorMessage(err)
	if !strings.Contains(msg, "signature") || !strings.Contains(msg, "secret key") {
		t.Errorf("message %q does not say the key is wrong", msg)
	}
	for _, got := range res {
		if got.Err == nil || got.Err.Code != "AuthFailure.SignatureFailure" || got.Err.RequestID == "" {
			t.Errorf("%s: %+v, want AuthFailure.SignatureFailure with Tencent's RequestId", got.InstanceID, got.Err)
		}
	}
}

func TestRebootRejectsBadInput(t *testing.T) {
	r := mustRig(t, emulator.Config{}, nil, running(1)...)
	tests := []struct {
		name   string
		region string
		stop   approval.StopType
	}{
		{"StopType", "", "GENTLE"},
		{"Region", "ap guangzhou", approval.Soft},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := r.cvm.Reboot(t.Context(), tt.region, idsOf(running(1)), tt.stop)
			if approval.ErrorKind(err) != approval.Invalid {
				t.Errorf("error %v, want an invalid-input error", err)
			}
			if len(res) != 1 || res[0].Err == nil || res[0].Err.Code != CodeInvalidRequest {
				t.Errorf("results %+v, want %s", res, CodeInvalidRequest)
			}
		})
	}
	if got := r.emu.Calls(""); got != 0 {
		t.Errorf("emulator saw %d calls, want none", got)
	}
	if res, err := r.cvm.Reboot(t.Context(), "", nil, approval.Soft); res != nil || err != nil {
		t.Errorf("Reboot of nothing = %v, %v; want nothing", res, err)
	}
}

func TestRebootHonoursContext(t *testing.T) {
	t.Run("AlreadyCancelled", func(t *testing.T) {
		r := mustRig(t, emulator.Config{}, nil, running(2)...)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		res, err := r.cvm.Reboot(ctx, "", idsOf(running(2)), approval.Soft)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error = %v, want context.Canceled", err)
		}
		for _, got := range res {
			if got.Err == nil || got.Err.Code != CodeCanceled {
				t.Errorf("%s: %+v, want %s", got.InstanceID, got.Err, CodeCanceled)
			}
		}
		if n := r.emu.Calls(""); n != 0 {
			t.Errorf("emulator saw %d calls, want none", n)
		}
	})
	t.Run("DuringBackoff", func(t *testing.T) {
		clock := testutil.NewFakeClock(time.Now())
		r := mustRig(t, emulator.Config{}, func(c *Config) {
			c.Clock = clock
			c.BaseDelay, c.MaxDelay = time.Hour, time.Hour
		}, running(1)...)
		r.emu.SetFaults(emulator.Fault{Action: ActionReboot, Code: "RequestLimitExceeded"})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			_, err := r.cvm.Reboot(ctx, "", idsOf(running(1)), approval.Soft)
			done <- err
		}()
		testutil.Eventually(t, 10*time.Second, func() bool { return clock.Waiters() == 1 }, "the adapter to back off")
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("error = %v, want context.Canceled", err)
		}
		if n := r.emu.Calls(ActionReboot); n != 1 {
			t.Errorf("RebootInstances calls = %d, want 1", n)
		}
	})
	t.Run("WaitingForTheLimiter", func(t *testing.T) {
		clock := testutil.NewFakeClock(time.Now())
		lim := NewLimiterWithClock(1, clock)
		if err := lim.Wait(t.Context()); err != nil { // use up the only slot
			t.Fatal(err)
		}
		r := mustRig(t, emulator.Config{}, func(c *Config) { c.Limiter = lim }, running(1)...)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			_, err := r.cvm.Reboot(ctx, "", idsOf(running(1)), approval.Soft)
			done <- err
		}()
		testutil.Eventually(t, 10*time.Second, func() bool { return clock.Waiters() == 1 }, "the adapter to wait for the limiter")
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("error = %v, want context.Canceled", err)
		}
		if n := r.emu.Calls(ActionReboot); n != 0 {
			t.Errorf("RebootInstances calls = %d, want 0", n)
		}
	})
}

func TestRebootUnknownOutcome(t *testing.T) {
	t.Run("CarriedOut", func(t *testing.T) {
		// The emulator reboots, then holds the answer past the attempt's
		// timeout: the adapter must find the reboot and not repeat it.
		ins := running(3)
		r := mustRig(t, emulator.Config{RebootDuration: time.Hour}, func(c *Config) { c.RequestTimeout = 300 * time.Millisecond }, ins...)
		r.emu.SetFaults(emulator.Fault{Action: ActionReboot, Latency: 3 * time.Second, Count: 1})
		res := mustReboot(t, r.cvm, idsOf(ins), approval.Soft)
		for _, got := range res {
			st := r.status(t, got.InstanceID)
			if got.Err != nil || got.RequestID != st.LatestOperationRequestID {
				t.Errorf("%s: %+v, want accepted by %s", got.InstanceID, got, st.LatestOperationRequestID)
			}
			if n := r.emu.RebootCalls(got.InstanceID); n != 1 {
				t.Errorf("%s rebooted %d times, want 1", got.InstanceID, n)
			}
		}
		if n := r.emu.Calls(ActionReboot); n != 1 {
			t.Errorf("RebootInstances calls = %d, want 1", n)
		}
		if got, want := r.calls.of(ActionReboot), []string{CodeRequestTimeout}; !slices.Equal(got, want) {
			t.Errorf("OnCall codes = %q, want %q", got, want)
		}
	})
	t.Run("NotCarriedOut", func(t *testing.T) {
		// The first request is lost on the way: after looking, the
		// adapter may and does try again.
		ins := running(2)
		r := mustRig(t, emulator.Config{RebootDuration: time.Hour}, nil, ins...)
		p := mustProxy(t, r.url)
		var once sync.Once
		p.setIntercept(func(w http.ResponseWriter, req *http.Request) bool {
			lost := false
			if req.Header.Get("X-TC-Action") == ActionReboot {
				once.Do(func() { lost = true })
			}
			if lost {
				// Hold it until the client gives up; the server notices
				// the closed connection only once the body is read.
				io.Copy(io.Discard, req.Body)
				<-req.Context().Done()
			}
			return lost
		})
		cfg := r.testConfig(p.srv.URL)
		cfg.RequestTimeout = 300 * time.Millisecond
		c := mustNew(t, cfg)
		res := mustReboot(t, c, idsOf(ins), approval.Soft)
		for _, got := range res {
			if got.Err != nil {
				t.Errorf("%s: %v", got.InstanceID, got.Err)
			}
			if n := r.emu.RebootCalls(got.InstanceID); n != 1 {
				t.Errorf("%s rebooted %d times, want 1", got.InstanceID, n)
			}
		}
		if n := len(p.requests(ActionReboot)); n != 2 {
			t.Errorf("%d RebootInstances requests, want 2", n)
		}
	})
	t.Run("CannotTell", func(t *testing.T) {
		// After the timeout, look-ups fail too: the adapter must not
		// risk a second reboot.
		ins := running(2)
		r := mustRig(t, emulator.Config{RebootDuration: time.Hour}, nil, ins...)
		r.emu.SetFaults(emulator.Fault{Action: ActionReboot, Latency: 3 * time.Second, Count: 1})
		p := mustProxy(t, r.url)
		var mu sync.Mutex
		rebooted := false
		p.setIntercept(func(w http.ResponseWriter, req *http.Request) bool {
			mu.Lock()
			defer mu.Unlock()
			switch req.Header.Get("X-TC-Action") {
			case ActionReboot:
				rebooted = true
			case ActionDescribe:
				if rebooted {
					http.Error(w, "upstream unavailable", http.StatusBadGateway)
					return true
				}
			}
			return false
		})
		cfg := r.testConfig(p.srv.URL)
		cfg.RequestTimeout = 300 * time.Millisecond
		cfg.MaxAttempts = 3
		c := mustNew(t, cfg)
		res, _ := c.Reboot(t.Context(), "", idsOf(ins), approval.Soft)
		for _, got := range res {
			if got.Err == nil || got.Err.Code != CodeOutcomeUnknown {
				t.Errorf("%s: %+v, want %s", got.InstanceID, got.Err, CodeOutcomeUnknown)
			}
			if n := r.emu.RebootCalls(got.InstanceID); n != 1 {
				t.Errorf("%s rebooted %d times, want 1", got.InstanceID, n)
			}
		}
		if n := len(p.requests(ActionReboot)); n != 1 {
			t.Errorf("%d RebootInstances requests, want 1", n)
		}
	})
}

func TestSharedLimiterAcrossRegionsAndAdapters(t *testing.T) {
	// The emulator and the limiter share a fake clock, so the emulator's
	// own 10-calls-a-second check sees the limiter's schedule exactly.
	clock := testutil.NewFakeClock(time.Now())
	lim := NewLimiterWithClock(RebootCallsPerSecond, clock)
	var ins []emulator.Instance
	for i := range 25 {
		zone := "ap-guangzhou-3"
		if i%2 == 1 {
			zone = "ap-shanghai-2"
		}
		ins = append(ins, emulator.Instance{ID: fmt.Sprintf("ins-%08d", i+1), Zone: zone})
	}
	r := mustRig(t, emulator.Config{Now: clock.Now, SignatureWindow: -1}, func(c *Config) { c.Limiter = lim }, ins...)
	cfg := r.testConfig(r.url)
	cfg.Limiter = lim
	other := mustNew(t, cfg) // a second adapter sharing the limiter

	var wg sync.WaitGroup
	errs := make(chan error, len(ins))
	for i, in := range ins {
		c, region := r.cvm, "ap-guangzhou"
		if i%2 == 1 {
			region = "ap-shanghai"
		}
		if i%3 == 0 {
			c = other
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := c.Reboot(t.Context(), region, []string{in.ID}, approval.Soft)
			if err == nil && res[0].Err != nil {
				err = res[0].Err
			}
			if err != nil {
				errs <- fmt.Errorf("%s: %w", in.ID, err)
			}
		}()
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		return r.emu.Calls(ActionReboot) == 10 && lim.inFlight() == 0 && clock.Waiters() == 1
	}, "10 calls answered and the next waiting on the clock")
	clock.Advance(time.Second)
	testutil.Eventually(t, 10*time.Second, func() bool {
		return r.emu.Calls(ActionReboot) == 20 && lim.inFlight() == 0 && clock.Waiters() == 1
	}, "20 calls answered and the next waiting on the clock")
	clock.Advance(time.Second)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	st := lim.Stats()
	if st.Calls != 25 {
		t.Errorf("limiter let %d calls through, want 25", st.Calls)
	}
	if span := st.Last.Sub(st.First); span < 2*time.Second {
		t.Errorf("25 calls took %v of limiter time, want at least 2s", span)
	}
	if n := r.emu.Calls(ActionReboot); n != 25 {
		t.Errorf("RebootInstances calls = %d, want 25 (none refused for the rate)", n)
	}
	for _, c := range r.answered(ActionReboot) {
		if c.ErrorCode != "" {
			t.Errorf("call %s refused with %s", c.RequestID, c.ErrorCode)
		}
	}
}

func TestSuspects(t *testing.T) {
	seen := map[string]approval.Instance{
		"ins-aaaaaaaa": {ID: "ins-aaaaaaaa", State: "RUNNING"},
		"ins-bbbbbbbb": {ID: "ins-bbbbbbbb", State: "STOPPED"},
		"ins-cccccccc": {ID: "ins-cccccccc", State: "ENTER_RESCUE_MODE"},
		"ins-dddddddd": {ID: "ins-dddddddd", State: "RUNNING", LatestOperationState: "OPERATING"},
	}
	all := []string{"ins-aaaaaaaa", "ins-bbbbbbbb", "ins-cccccccc", "ins-dddddddd", "ins-eeeeeeee", "bad-id"}
	tests := []struct {
		code string
		want []string
	}{
		{"UnsupportedOperation.InstanceStateStopped", []string{"ins-bbbbbbbb"}},
		{"UnsupportedOperation.InstanceStateEnterRescueMode", []string{"ins-cccccccc"}},
		{"InvalidInstanceId.NotFound", []string{"ins-eeeeeeee", "bad-id"}},
		{"InvalidInstanceId.Malformed", []string{"bad-id"}},
		{"InvalidParameterValue.InstanceIdMalformed", []string{"bad-id"}},
		{"OperationDenied.InstanceOperationInProgress", []string{"ins-bbbbbbbb", "ins-cccccccc", "ins-dddddddd"}},
		{"MutexOperation.TaskRunning", []string{"ins-bbbbbbbb", "ins-cccccccc", "ins-dddddddd"}},
		// No instance in that state: anything that cannot be rebooted.
		{"UnsupportedOperation.InstanceStateTerminating", []string{"ins-bbbbbbbb", "ins-cccccccc", "ins-eeeeeeee", "bad-id"}},
		{"UnauthorizedOperation", []string{"ins-bbbbbbbb", "ins-cccccccc", "ins-eeeeeeee", "bad-id"}},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			if got := suspects(all, tt.code, seen); !slices.Equal(got, tt.want) {
				t.Errorf("suspects = %v, want %v", got, tt.want)
			}
		})
	}
	if got := suspects([]string{"ins-aaaaaaaa"}, "MutexOperation.TaskRunning", seen); got != nil {
		t.Errorf("suspects among healthy instances = %v, want none", got)
	}
}

func TestRebootedSince(t *testing.T) {
	before := approval.Instance{LatestOperation: "StopInstances", LatestOperationRequestID: "old"}
	tests := []struct {
		name string
		now  approval.Instance
		want bool
	}{
		{"NewRebootOperating", approval.Instance{State: "RUNNING", LatestOperation: "RebootInstances", LatestOperationState: "OPERATING", LatestOperationRequestID: "new"}, true},
		{"NewRebootSucceeded", approval.Instance{State: "RUNNING", LatestOperation: "RebootInstances", LatestOperationState: "SUCCESS", LatestOperationRequestID: "new"}, true},
		{"NewRebootFailed", approval.Instance{State: "RUNNING", LatestOperation: "RebootInstances", LatestOperationState: "FAILED", LatestOperationRequestID: "new"}, true},
		{"Rebooting", approval.Instance{State: "REBOOTING", LatestOperationRequestID: "old"}, true},
		{"Unchanged", approval.Instance{State: "RUNNING", LatestOperation: "StopInstances", LatestOperationRequestID: "old"}, false},
		{"OtherOperation", approval.Instance{State: "RUNNING", LatestOperation: "StartInstances", LatestOperationRequestID: "new"}, false},
	}
	for _, tt := range tests {
		if got := rebootedSince(before, tt.now); got != tt.want {
			t.Errorf("%s: rebootedSince = %v, want %v", tt.name, got, tt.want)
		}
	}
	old := approval.Instance{LatestOperation: "RebootInstances", LatestOperationRequestID: "r1"}
	if rebootedSince(old, old) {
		t.Error("an earlier reboot counted as a new one")
	}
}
