package cloud

import (
	"log/slog"
	"testing"
	"time"

	"rebootbot/cloud/emulator"
	"rebootbot/cloud/emulator/emulatortest"
)

// benchFinder returns an adapter for the emulator at url with a fresh
// describe limiter and a counter of its DescribeInstances calls.
func benchFinder(b *testing.B, url string) (*CVM, *int) {
	calls := new(int)
	c, err := New(Config{
		SecretID: emulatortest.SecretID, SecretKey: emulatortest.SecretKey, Endpoint: url,
		DescribeLimiter: NewLimiter(DescribeCallsPerSecond),
		Logger:          slog.New(slog.DiscardHandler),
		OnCall: func(action, code string) {
			if action == ActionDescribe {
				*calls++
			}
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	return c, calls
}

// BenchmarkFind5000 resolves tag:role=webs to 5,000 instances among 8,000
// on the emulator over loopback, each time with a fresh 40-a-second
// describe limiter, as a bot that has not called DescribeInstances in the
// last second would. It reports the DescribeInstances calls per
// resolution.
func BenchmarkFind5000(b *testing.B) {
	_, url := emulatortest.Start(b, emulator.Config{}, append(fleetOf(5000, "webs"), fleetOf(3000, "apis")...)...)
	sel := mustSelector(b, "tag:role=webs")
	var calls int
	for b.Loop() {
		c, n := benchFinder(b, url)
		start := time.Now()
		got, err := c.Find(b.Context(), "", sel)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != 5000 {
			b.Fatalf("found %d, want 5000", len(got))
		}
		if d := time.Since(start); d > 3*time.Second {
			b.Errorf("resolving 5,000 instances took %v, target under 3 s", d)
		}
		calls = *n
	}
	b.ReportMetric(float64(calls), "describe-calls/op")
}

// BenchmarkFind1000 resolves one tag to 1,000 instances: the target is at
// most 11 DescribeInstances calls.
func BenchmarkFind1000(b *testing.B) {
	_, url := emulatortest.Start(b, emulator.Config{}, append(fleetOf(1000, "webs"), fleetOf(3000, "apis")...)...)
	sel := mustSelector(b, "tag:role=webs")
	var calls int
	for b.Loop() {
		c, n := benchFinder(b, url)
		if got, err := c.Find(b.Context(), "", sel); err != nil || len(got) != 1000 {
			b.Fatalf("found %d, err %v", len(got), err)
		}
		calls = *n
	}
	if calls > 11 {
		b.Errorf("%d DescribeInstances calls, target at most 11", calls)
	}
	b.ReportMetric(float64(calls), "describe-calls/op")
}
