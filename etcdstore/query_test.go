package etcdstore

import (
	"context"
	"slices"
	"testing"

	"rebootbot/approval"
	"rebootbot/etcdstore/etcdtest"
)

// TestAuditSurvivesCompaction compacts the cluster's history in the middle
// of a lookup that reads at the revision it started from: the lookup goes
// on with quorum reads and still returns every event once, in order.
func TestAuditSurvivesCompaction(t *testing.T) {
	setPage(t, &pageSize, 3)
	m := etcdtest.Start(t)
	s := mustLog(t, m, 20)
	ctx := context.Background()
	for _, oldest := range []bool{false, true} {
		// Each compaction needs a newer revision than the last.
		mustPut(t, s, s.prefix+"touch", "x")
		var got []uint64
		err := s.Audit(ctx, approval.AuditQuery{User: "U0USER00007", Oldest: oldest}, func(e *approval.Event) error {
			got = append(got, e.Seq)
			return nil
		})
		if err != nil || !slices.Equal(got, []uint64{7}) {
			t.Fatalf("Audit = %v, %v", got, err)
		}
		got = nil
		compacted := false
		err = s.Audit(ctx, approval.AuditQuery{Oldest: oldest}, func(e *approval.Event) error {
			got = append(got, e.Seq)
			if !compacted {
				resp, err := s.client.Put(ctx, s.prefix+"touch", "y")
				if err != nil {
					return err
				}
				if _, err := s.client.Compact(ctx, resp.Header.Revision); err != nil {
					return err
				}
				compacted = true
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Audit across a compaction: %v", err)
		}
		want := make([]uint64, 20)
		for i := range want {
			want[i] = uint64(i + 1)
		}
		if !oldest {
			slices.Reverse(want)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Audit(oldest %v) across a compaction = %v, want %v", oldest, got, want)
		}
	}
}
