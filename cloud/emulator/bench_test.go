package emulator

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The benchmarks drive the real handler with signed requests, as the SDK
// sends them, over a fleet of 5000 instances.

func benchFleet(b *testing.B, cfg Config) (*Emulator, []string) {
	b.Helper()
	ins := generate(5000, 1, DefaultRegion)
	e := mustNew(b, cfg, ins...)
	ids := make([]string, len(ins))
	for i, in := range ins {
		ids[i] = in.ID
	}
	return e, ids
}

func idsJSON(ids []string) string {
	return `["` + strings.Join(ids, `","`) + `"]`
}

func BenchmarkDescribe100(b *testing.B) {
	e, ids := benchFleet(b, Config{DescribeCallsPerSecond: -1})
	body := `{"InstanceIds":` + idsJSON(ids[1000:1100]) + `,"Limit":100}`
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		r := newRawRequest("DescribeInstances", DefaultRegion, body, now)
		w := httptest.NewRecorder()
		e.ServeHTTP(w, r)
		if w.Code != http.StatusOK || strings.Contains(w.Body.String(), `"Error"`) {
			b.Fatalf("answer: %s", w.Body.String())
		}
	}
}

func BenchmarkDescribe100Parallel(b *testing.B) {
	e, ids := benchFleet(b, Config{DescribeCallsPerSecond: -1})
	body := `{"InstanceIds":` + idsJSON(ids[1000:1100]) + `,"Limit":100}`
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := newRawRequest("DescribeInstances", DefaultRegion, body, now)
			w := httptest.NewRecorder()
			e.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				b.Errorf("HTTP %d", w.Code)
			}
		}
	})
}

func BenchmarkDescribeFilterScan(b *testing.B) {
	e, _ := benchFleet(b, Config{DescribeCallsPerSecond: -1})
	body := `{"Filters":[{"Name":"tag:env","Values":["prod"]},{"Name":"instance-state","Values":["RUNNING"]}],"Limit":100}`
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		e.ServeHTTP(w, newRawRequest("DescribeInstances", DefaultRegion, body, now))
		if strings.Contains(w.Body.String(), `"Error"`) {
			b.Fatalf("answer: %s", w.Body.String())
		}
	}
}

func BenchmarkReboot(b *testing.B) {
	// A reboot takes a nanosecond, so every instance is RUNNING again by
	// the time its turn comes round.
	e, ids := benchFleet(b, Config{CallsPerSecond: -1, RebootDuration: time.Nanosecond})
	bodies := make([]string, len(ids))
	for i, id := range ids {
		bodies[i] = `{"InstanceIds":["` + id + `"],"StopType":"SOFT"}`
	}
	now := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		w := httptest.NewRecorder()
		e.ServeHTTP(w, newRawRequest("RebootInstances", DefaultRegion, bodies[i%len(bodies)], now))
		if strings.Contains(w.Body.String(), `"Error"`) {
			b.Fatalf("answer: %s", w.Body.String())
		}
		i++
	}
}
