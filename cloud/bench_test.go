package cloud

import (
	"sync"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/cloud/emulator"
	"rebootbot/cloud/emulator/emulatortest"
)

func BenchmarkExplain(b *testing.B) {
	codes := []string{
		"UnsupportedOperation.InstanceStateStopped", // in the catalogue
		"RequestLimitExceeded.SomethingNew",         // by prefix
		"UnsupportedOperation.InstanceStateNew",     // derived from the state
		"Completely.Unknown",                        // generic
	}
	for b.Loop() {
		for _, c := range codes {
			Explain(c)
		}
	}
}

// benchRig is an emulator without rate limits and an adapter without
// pacing, so that a benchmark measures the adapter and the SDK.
func benchRig(b *testing.B, n int) (*CVM, []string) {
	ins := emulator.Generate(n, 11)
	_, url := emulatortest.Start(b, emulator.Config{CallsPerSecond: -1, RebootDuration: time.Nanosecond}, ins...)
	c, err := New(Config{
		SecretID:        emulatortest.SecretID,
		SecretKey:       emulatortest.SecretKey,
		Endpoint:        url,
		Limiter:         NewLimiter(MaxLimiterRate),
		DescribeLimiter: NewLimiter(MaxLimiterRate),
	})
	if err != nil {
		b.Fatal(err)
	}
	return c, idsOf(ins)
}

func BenchmarkDescribe100(b *testing.B) {
	c, ids := benchRig(b, 100)
	for b.Loop() {
		if _, _, err := c.Describe(b.Context(), "", ids); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReboot100(b *testing.B) {
	c, ids := benchRig(b, 100)
	for b.Loop() {
		res, err := c.Reboot(b.Context(), "", ids, approval.Soft)
		if err != nil || res[0].Err != nil {
			b.Fatal(err, res[0].Err)
		}
	}
}

// steppingClock moves forward a millisecond each time it is read, so a
// limiter on it never blocks and the benchmark measures its bookkeeping.
type steppingClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *steppingClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Millisecond)
	return c.now
}

func (c *steppingClock) After(time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	ch <- c.Now()
	return ch
}

func BenchmarkLimiterWait(b *testing.B) {
	l := NewLimiterWithClock(RebootCallsPerSecond, &steppingClock{now: time.Unix(0, 0)})
	for b.Loop() {
		if err := l.Wait(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
	if st := l.Stats(); st.Waited <= 0 {
		b.Fatalf("the limiter never held a call back: %+v", st)
	}
}
