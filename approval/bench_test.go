package approval_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/store"
)

// BenchmarkCreateAndApprove measures requests created (with their
// pre-flight look-up and card) and approved through the engine on a real
// bbolt file with fsync on. The policy needs two approvals so that the
// request stays pending and the benchmark measures the engine and the
// store, not a reboot.
func BenchmarkCreateAndApprove(b *testing.B) {
	instances := make([]approval.Instance, b.N)
	for i := range instances {
		instances[i] = approval.Instance{ID: fmt.Sprintf("ins-%08d", i), Name: "bench", Zone: "ap-guangzhou-3"}
	}
	cloud := newFakeCloud(instances...)
	db, err := store.Open(filepath.Join(b.TempDir(), "bench.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	p := testPolicy()
	p.MinApprovals = 2
	e, err := approval.NewEngine(approval.Config{Store: db, Cloud: cloud, Rebooter: cloud, Notifier: newFakeSlack(), Policy: p})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		r, err := e.Create(ctx, approval.CreateInput{Key: fmt.Sprintf("cmd-%d", i), Requester: "UREQ", Channel: "COPS",
			Reason: "benchmark", Instances: []string{instances[i].ID}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.Approve(ctx, fmt.Sprintf("click-%d", i), r.ID, "UALICE", r.Card); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "requests/s")
	b.StopTimer()
	e.Close(ctx)
}
