package emulator_test

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	cvm "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/cvm/v20170312"

	"rebootbot/cloud/emulator"
	"rebootbot/cloud/emulator/emulatortest"
	"rebootbot/internal/testutil"
)

var listeningRE = regexp.MustCompile(`listening on (https?://\S+)`)

// runCommand starts Command with args and returns its endpoint, its output
// and a function that stops it and returns its error.
func runCommand(t *testing.T, args ...string) (endpoint string, stdout, stderr *testutil.SyncBuffer, stop func() error) {
	t.Helper()
	stdout, stderr = &testutil.SyncBuffer{}, &testutil.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- emulator.Command(ctx, args, stdout, stderr) }()
	var once sync.Once
	var stopErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(10 * time.Second):
				t.Error("Command did not return after its context was cancelled")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { stop() })
	testutil.Eventually(t, 10*time.Second, func() bool {
		select {
		case err := <-done:
			t.Fatalf("Command returned before listening: %v\nstderr: %s", err, stderr.String())
		default:
		}
		if m := listeningRE.FindStringSubmatch(stdout.String()); m != nil {
			endpoint = m[1]
		}
		return endpoint != ""
	}, "Command to print its address")
	return endpoint, stdout, stderr, stop
}

func TestCommandServesUntilCancelled(t *testing.T) {
	t.Setenv("TENCENTCLOUD_SECRET_ID", "")
	t.Setenv("TENCENTCLOUD_SECRET_KEY", "")
	endpoint, stdout, stderr, stop := runCommand(t, "--listen", "127.0.0.1:0", "--instances", "3", "--reboot-duration", "1s")

	if strings.HasSuffix(endpoint, ":0") {
		t.Fatalf("printed address %s is not the actual one", endpoint)
	}
	out := stdout.String()
	ids := regexp.MustCompile(`(?m)^(ins-[a-z0-9]{8})\s+\S+\s+RUNNING\s+ap-guangzhou-\d\s+10\.`).FindAllStringSubmatch(out, -1)
	if len(ids) != 3 {
		t.Fatalf("stdout lists %d instances, want 3:\n%s", len(ids), out)
	}
	if !strings.Contains(out, emulator.DemoSecretID) || strings.Contains(out, emulator.DemoSecretKey) {
		t.Errorf("stdout should show the demo SecretId and never the key:\n%s", out)
	}

	c := emulatortest.Client(t, endpoint, region, emulator.DemoSecretID, emulator.DemoSecretKey)
	resp, err := c.DescribeInstances(cvm.NewDescribeInstancesRequest())
	if err != nil {
		t.Fatalf("DescribeInstances: %v", err)
	}
	if got, want := *resp.Response.TotalCount, int64(3); got != want {
		t.Errorf("TotalCount = %d, want %d", got, want)
	}
	mustReboot(t, c, ids[0][1])

	if err := stop(); err != nil {
		t.Errorf("Command returned %v, want nil after cancel", err)
	}
	logs := stderr.String()
	for _, want := range []string{"action=DescribeInstances", "action=RebootInstances", "instances=" + ids[0][1]} {
		if !strings.Contains(logs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, emulator.DemoSecretKey) {
		t.Errorf("stderr shows the key:\n%s", logs)
	}
	if _, err := c.DescribeInstances(cvm.NewDescribeInstancesRequest()); err == nil {
		t.Error("the emulator still answers after Command returned")
	}
}

// TestCommandFleet serves a generated fleet: a summary instead of one line
// per instance, tags to select by, and some STOPPED instances.
func TestCommandFleet(t *testing.T) {
	t.Setenv("TENCENTCLOUD_SECRET_ID", "")
	t.Setenv("TENCENTCLOUD_SECRET_KEY", "")
	endpoint, stdout, _, stop := runCommand(t, "--listen", "127.0.0.1:0", "--fleet", "4000")
	out := stdout.String()
	for _, want := range []string{"4000 instances", "ap-guangzhou-3  RUNNING", "STOPPED", "tag:role=web"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\n"); n > 60 {
		t.Errorf("stdout has %d lines for a fleet; want a summary", n)
	}
	c := emulatortest.Client(t, endpoint, region, emulator.DemoSecretID, emulator.DemoSecretKey)
	req := cvm.NewDescribeInstancesRequest()
	req.Filters = filters("tag:role", "web")
	resp, err := c.DescribeInstances(req)
	if err != nil {
		t.Fatal(err)
	}
	web := *resp.Response.TotalCount
	req.Filters = filters("instance-state", "STOPPED")
	if resp, err = c.DescribeInstances(req); err != nil {
		t.Fatal(err)
	}
	if stopped := *resp.Response.TotalCount; web < 300 || stopped != 100 {
		t.Errorf("%d instances tagged role=web and %d STOPPED; want hundreds and 1 in 40", web, stopped)
	}
	if err := stop(); err != nil {
		t.Errorf("Command returned %v", err)
	}
}

func TestCommandKeyFromEnvironmentAndSeed(t *testing.T) {
	t.Setenv("TENCENTCLOUD_SECRET_ID", "AKIDfromenv")
	t.Setenv("TENCENTCLOUD_SECRET_KEY", "keyfromenv")
	seed := writeSeed(t, `[{"id": "ins-sh000001", "zone": "ap-shanghai-2", "state": "STOPPED"},
		{"id": "ins-sh000002", "zone": "ap-shanghai-2"}]`)
	endpoint, stdout, _, stop := runCommand(t, "--listen", "127.0.0.1:0", "--seed", seed, "--error-rate", "1", "--error-code", "ResourceUnavailable", "--error-action", "RebootInstances")

	if out := stdout.String(); !strings.Contains(out, "ins-sh000001") || !strings.Contains(out, "STOPPED") || strings.Contains(out, "keyfromenv") {
		t.Errorf("stdout:\n%s", out)
	}
	c := emulatortest.Client(t, endpoint, "ap-shanghai", "AKIDfromenv", "keyfromenv")
	if got := mustDescribe(t, c, "ins-sh000001", "ins-sh000002"); len(got) != 2 {
		t.Errorf("described %d instances, want 2", len(got))
	}
	_, err := c.RebootInstances(rebootRequest("ins-sh000002"))
	if got, want := codeOf(t, err), "ResourceUnavailable"; got != want {
		t.Errorf("reboot with --error-rate 1: code = %q, want %q", got, want)
	}
	if err := stop(); err != nil {
		t.Errorf("Command returned %v", err)
	}
}

func TestCommandBadFlags(t *testing.T) {
	t.Setenv("TENCENTCLOUD_SECRET_ID", "")
	t.Setenv("TENCENTCLOUD_SECRET_KEY", "")
	seed := writeSeed(t, `[{"id": "ins-aaaaaaaa"}]`)
	badSeed := writeSeed(t, `[{"id": "nope"}]`)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"UnknownFlag", []string{"--colour", "blue"}, "colour"},
		{"ExtraArgument", []string{"serve"}, `unexpected argument "serve"`},
		{"ErrorRateHigh", []string{"--error-rate", "1.5"}, "--error-rate"},
		{"ErrorRateNotNumber", []string{"--error-rate", "lots"}, "error-rate"},
		{"NegativeLatency", []string{"--latency", "-1s"}, "--latency"},
		{"ZeroRebootDuration", []string{"--reboot-duration", "0s"}, "--reboot-duration"},
		{"ZeroCallsPerSecond", []string{"--calls-per-second", "0"}, "--calls-per-second"},
		{"NoInstances", []string{"--instances", "0"}, "--instances"},
		{"BadRegion", []string{"--region", "Mars"}, "--region"},
		{"BadErrorCode", []string{"--error-rate", "0.1", "--error-code", "oops!"}, "--error-code"},
		{"CodeWithoutRate", []string{"--error-code", "InternalError"}, "--error-rate"},
		{"UnknownErrorAction", []string{"--error-rate", "0.1", "--error-action", "RunInstances"}, "--error-action"},
		{"SeedAndInstances", []string{"--seed", seed, "--instances", "3"}, "--seed"},
		{"SeedAndFleet", []string{"--seed", seed, "--fleet", "3000"}, "--seed"},
		{"FleetAndInstances", []string{"--fleet", "3000", "--instances", "3"}, "--fleet or --instances"},
		{"FleetZero", []string{"--fleet", "0"}, "--fleet must be between 1 and 100000"},
		{"MissingSeed", []string{"--seed", seed + ".missing"}, "seed file"},
		{"BadSeed", []string{"--seed", badSeed}, "malformed"},
		{"IDWithoutKey", []string{"--secret-id", "AKIDlonely"}, "SecretKey"},
		{"BadListen", []string{"--listen", "not-an-address"}, "not-an-address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr testutil.SyncBuffer
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // a bad flag must be reported without serving
			err := emulator.Command(ctx, tt.args, &stdout, &stderr)
			if err == nil {
				t.Fatal("Command succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to mention %q", err, tt.want)
			}
			if stdout.String() != "" || stderr.String() != "" {
				t.Errorf("Command printed on a bad command line; the caller reports it in one line:\nstdout: %s\nstderr: %s", stdout.String(), stderr.String())
			}
		})
	}
}

func TestCommandHelp(t *testing.T) {
	var stdout, stderr testutil.SyncBuffer
	if err := emulator.Command(context.Background(), []string{"-h"}, &stdout, &stderr); err != nil {
		t.Fatalf("Command -h = %v, want nil", err)
	}
	if !strings.Contains(stdout.String(), "-listen") || stderr.String() != "" {
		t.Errorf("help does not describe --listen on stdout:\n%s\nstderr: %s", stdout.String(), stderr.String())
	}
}
