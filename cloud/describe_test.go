package cloud

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/cloud/emulator"
	"rebootbot/cloud/emulator/emulatortest"
	"rebootbot/internal/testutil"
)

func TestDescribe(t *testing.T) {
	web := emulator.Instance{
		ID: "ins-web00001", Name: "web-1", Zone: "ap-guangzhou-4", State: "RUNNING",
		PrivateIPs: []string{"10.0.0.5"}, PublicIPs: []string{"203.0.113.7"},
		Tags: map[string]string{"env": "prod", "team": "storefront"},
	}
	db := emulator.Instance{ID: "ins-db000001", Name: "db-1", Zone: "ap-guangzhou-3", State: "STOPPED"}
	other := emulator.Instance{ID: "ins-sh000001", Zone: "ap-shanghai-2"}
	r := mustRig(t, emulator.Config{}, nil, web, db, other)

	found, missing, err := r.cvm.Describe(t.Context(), "", []string{
		"ins-db000001", "ins-web00001", "ins-zzzzzzzz", "not-an-id", "ins-web00001", "ins-sh000001",
	})
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	if got, want := len(found), 2; got != want {
		t.Fatalf("found %d instances, want %d: %+v", got, want, found)
	}
	if got, want := found[0].ID, "ins-db000001"; got != want {
		t.Errorf("found[0] = %s, want %s (the order asked)", got, want)
	}
	got := found[1]
	want := approval.Instance{
		ID: "ins-web00001", Name: "web-1", State: "RUNNING", Zone: "ap-guangzhou-4",
		PrivateIPs: []string{"10.0.0.5"}, PublicIPs: []string{"203.0.113.7"},
		Tags: map[string]string{"env": "prod", "team": "storefront"},
	}
	if got.ID != want.ID || got.Name != want.Name || got.State != want.State || got.Zone != want.Zone ||
		!slices.Equal(got.PrivateIPs, want.PrivateIPs) || !slices.Equal(got.PublicIPs, want.PublicIPs) ||
		len(got.Tags) != 2 || got.Tags["env"] != "prod" || got.Tags["team"] != "storefront" {
		t.Errorf("web instance = %+v, want %+v", got, want)
	}
	if found[0].State != "STOPPED" {
		t.Errorf("db state = %s, want STOPPED", found[0].State)
	}
	// ap-shanghai's instance does not exist in the default region.
	if want := []string{"ins-zzzzzzzz", "not-an-id", "ins-sh000001"}; !slices.Equal(missing, want) {
		t.Errorf("missing = %v, want %v", missing, want)
	}
	if got := r.emu.Calls(ActionDescribe); got != 1 {
		t.Errorf("DescribeInstances calls = %d, want 1 (the malformed ID is not sent)", got)
	}

	// Another region gets its own client.
	found, missing, err = r.cvm.Describe(t.Context(), "ap-shanghai", []string{"ins-sh000001"})
	if err != nil || len(found) != 1 || len(missing) != 0 {
		t.Fatalf("Describe in ap-shanghai = %v, %v, %v; want the instance", found, missing, err)
	}
	if got := len(r.cvm.clients); got != 2 {
		t.Errorf("%d SDK clients cached, want one per region (2)", got)
	}
}

func TestDescribeLatestOperation(t *testing.T) {
	r := mustRig(t, emulator.Config{RebootDuration: time.Hour}, nil, running(1)...)
	id := running(1)[0].ID
	res := mustReboot(t, r.cvm, []string{id}, approval.Soft)
	found, _, err := r.cvm.Describe(t.Context(), "", []string{id})
	if err != nil {
		t.Fatal(err)
	}
	got := found[0]
	if got.State != approval.InstanceRebooting || got.LatestOperation != approval.OpReboot ||
		got.LatestOperationState != approval.OpOperating || got.LatestOperationRequestID != res[0].RequestID {
		t.Errorf("instance = %+v, want REBOOTING with RebootInstances OPERATING by %s", got, res[0].RequestID)
	}
}

func TestDescribeBatchesOf100(t *testing.T) {
	ins := emulator.Generate(250, 7)
	r := mustRig(t, emulator.Config{}, nil, ins...)
	found, missing, err := r.cvm.Describe(t.Context(), "", idsOf(ins))
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 250 || len(missing) != 0 {
		t.Errorf("found %d, missing %d; want 250, 0", len(found), len(missing))
	}
	if got := r.emu.Calls(ActionDescribe); got != 3 {
		t.Errorf("DescribeInstances calls = %d, want 3", got)
	}
	for _, c := range r.answered(ActionDescribe) {
		if len(c.InstanceIDs) > MaxIDsPerCall {
			t.Errorf("a call named %d instances", len(c.InstanceIDs))
		}
	}
}

func TestDescribeErrors(t *testing.T) {
	const badKey = "definitely-the-wrong-secret"
	tests := []struct {
		name      string
		mod       func(*Config)
		faults    []emulator.Fault
		region    string
		wantCode  string
		wantKind  approval.Kind
		wantCalls int
	}{
		{name: "BadKey", mod: func(c *Config) { c.SecretKey = badKey },
			wantCode: "AuthFailure.SignatureFailure", wantKind: approval.Forbidden, wantCalls: 1},
		{name: "UnknownSecretID", mod: func(c *Config) { c.SecretID = "AKIDnobody" },
			wantCode: "AuthFailure.SecretIdNotFound", wantKind: approval.Forbidden, wantCalls: 1},
		{name: "PermanentFault", faults: []emulator.Fault{{Action: ActionDescribe, Code: "UnauthorizedOperation"}},
			wantCode: "UnauthorizedOperation", wantKind: approval.Forbidden, wantCalls: 1},
		{name: "TransientExhausted", faults: []emulator.Fault{{Action: ActionDescribe, Code: "InternalError"}},
			wantCode: "InternalError", wantKind: approval.Unavailable, wantCalls: 6},
		{name: "BadRegion", region: "Not A Region", wantCode: CodeInvalidRequest, wantKind: approval.Invalid, wantCalls: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRig(t, emulator.Config{}, tt.mod, running(2)...)
			r.emu.SetFaults(tt.faults...)
			_, _, err := r.cvm.Describe(t.Context(), tt.region, idsOf(running(2)))
			if err == nil {
				t.Fatal("Describe succeeded, want an error")
			}
			var ce *approval.CloudError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v carries no CloudError", err)
			}
			if ce.Code != tt.wantCode {
				t.Errorf("code = %s, want %s", ce.Code, tt.wantCode)
			}
			if got := approval.ErrorKind(err); got != tt.wantKind {
				t.Errorf("kind = %s, want %s", got, tt.wantKind)
			}
			if got := r.emu.Calls(""); got != tt.wantCalls {
				t.Errorf("emulator saw %d calls, want %d", got, tt.wantCalls)
			}
			if ce.Explanation == "" || !strings.Contains(approval.ErrorMessage(err), ce.Explanation) {
				t.Errorf("message %q lacks the explanation %q", approval.ErrorMessage(err), ce.Explanation)
			}
			for _, text := range []string{err.Error(), ce.Message, r.log.String()} {
				if strings.Contains(text, badKey) || strings.Contains(text, emulatortest.SecretKey) {
					t.Errorf("a secret leaked: %q", text)
				}
			}
		})
	}
}

func TestSessionToken(t *testing.T) {
	const token = "session-token-0123456789"
	tests := []struct {
		name     string
		token    string
		wantCode string
	}{
		{"Right", token, ""},
		{"Wrong", "another-token-9876543210", "AuthFailure.TokenFailure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRig(t, emulator.Config{Token: token}, func(c *Config) { c.SessionToken = tt.token }, running(1)...)
			_, _, err := r.cvm.Describe(t.Context(), "", idsOf(running(1)))
			var ce *approval.CloudError
			errors.As(err, &ce)
			switch {
			case tt.wantCode == "" && err != nil:
				t.Fatalf("Describe: %v", err)
			case tt.wantCode != "" && (ce == nil || ce.Code != tt.wantCode):
				t.Fatalf("Describe error = %v, want %s", err, tt.wantCode)
			}
			if err != nil && (strings.Contains(err.Error(), tt.token) || strings.Contains(err.Error(), token)) {
				t.Errorf("the session token leaked: %v", err)
			}
		})
	}
}

func TestDescribeHonoursContext(t *testing.T) {
	r := mustRig(t, emulator.Config{}, nil, running(1)...)
	r.emu.SetFaults(emulator.Fault{Action: ActionDescribe, Latency: time.Minute})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, _, err := r.cvm.Describe(ctx, "", idsOf(running(1)))
		done <- err
	}()
	// The emulator counts the call when it arrives and then holds it.
	testutil.Eventually(t, 10*time.Second, func() bool { return r.emu.Calls(ActionDescribe) == 1 }, "the call to arrive")
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Describe = %v, want context.Canceled", err)
	}
	var ce *approval.CloudError
	if !errors.As(err, &ce) || ce.Code != CodeCanceled {
		t.Errorf("CloudError = %v, want %s", ce, CodeCanceled)
	}
	if got := r.emu.Calls(ActionDescribe); got != 1 {
		t.Errorf("DescribeInstances calls = %d, want 1 (no retry after cancellation)", got)
	}
}
