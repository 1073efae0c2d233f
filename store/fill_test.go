package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"rebootbot/approval"

	bolt "go.etcd.io/bbolt"
)

// TestInstanceIndexPagesStayFull appends events of many requests whose
// instances interleave in the instance index, as requests of a hundred
// instances each do, and checks that the index's pages stay at least half
// full: an entry lands in the middle of the index, not at its end, and a
// split that packs the left page leaves a nearly empty right one for each
// entry that follows.
func TestInstanceIndexPagesStayFull(t *testing.T) {
	db := mustOpen(t, Options{NoSync: true})
	rng := rand.New(rand.NewPCG(1, 2))
	const requests, perRequest, eventsEach = 20, 100, 6
	groups := make([][]string, requests)
	for i := range groups {
		for range perRequest {
			groups[i] = append(groups[i], fmt.Sprintf("ins-%08x", rng.Uint32()))
		}
	}
	for round := range eventsEach {
		for i, ids := range groups {
			e := approval.Event{Type: approval.EventInstanceSucceeded, Actor: approval.ActorBot, RequestID: fmt.Sprintf("R-%d", i+1), Instances: ids}
			if _, _, err := db.Record(context.Background(), "", approval.Reply{}, []approval.Event{e}); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
	var st bolt.BucketStats
	if err := db.bolt.View(func(tx *bolt.Tx) error { st = tx.Bucket(bucketIdxInstance).Stats(); return nil }); err != nil {
		t.Fatal(err)
	}
	if st.KeyN != requests*perRequest*eventsEach {
		t.Fatalf("the index holds %d entries, want %d", st.KeyN, requests*perRequest*eventsEach)
	}
	fill := float64(st.LeafInuse) / float64(st.LeafAlloc)
	t.Logf("instance index: %d entries in %d leaf pages, %.0f%% full", st.KeyN, st.LeafPageN, 100*fill)
	if fill < 0.5 {
		t.Errorf("instance index pages are %.0f%% full (%d bytes in %d leaf pages), want at least 50%%", 100*fill, st.LeafInuse, st.LeafPageN)
	}
}
