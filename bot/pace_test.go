package bot

import (
	"context"
	"testing"
	"time"
)

// TestWaveMessagesPaced checks that wave messages to one channel are
// spaced a second apart, and that another channel does not wait for it.
func TestWaveMessagesPaced(t *testing.T) {
	s := NewSlack(SlackConfig{Token: "xoxb-test", APIURL: "http://127.0.0.1:1/api/"})
	var waits []time.Duration
	s.sleep = func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	ctx := context.Background()
	for _, ch := range []string{"C0OPS", "C0OPS", "C0OPS", "C0OTHER"} {
		if err := s.pace(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	if len(waits) != 2 {
		t.Fatalf("waited %d times (%v), want twice: the second and third message to C0OPS", len(waits), waits)
	}
	for i, want := range []time.Duration{wavePace, 2 * wavePace} {
		if waits[i] > want || waits[i] < want-100*time.Millisecond {
			t.Errorf("wait %d = %s, want about %s", i+1, waits[i], want)
		}
	}
}
