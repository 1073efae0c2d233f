package main

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"rebootbot/metrics"
)

// TestScrapeStore reads the store counters the bot serves, as bot bench
// does after a run.
func TestScrapeStore(t *testing.T) {
	m := metrics.New(metrics.Options{})
	m.StoreCommit(true, 3, time.Millisecond)
	m.StoreCommit(true, 2, time.Millisecond)
	m.StoreCommit(false, 16, 5*time.Millisecond)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	writes, txs := scrapeStore(context.Background(), srv.URL)
	if writes["urgent"] != 5 || writes["background"] != 16 || txs["urgent"] != 2 || txs["background"] != 1 {
		t.Errorf("scraped writes %v, transactions %v; want urgent 5 in 2, background 16 in 1", writes, txs)
	}
}
