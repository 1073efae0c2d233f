//go:build e2e

package etcdstore

import (
	"sync/atomic"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/approval/storetest"
	"rebootbot/etcdstore/etcdtest"
)

// The three-member contract run takes about ten seconds more than the
// single-member one, so it runs with the multi-process tests:
// go test -tags e2e ./etcdstore

// TestContractAcrossMembers runs the Store contract on a three-member
// cluster with each replica talking to a different member, so that reads
// at a revision can reach a follower that has not applied it yet.
func TestContractAcrossMembers(t *testing.T) {
	setPage(t, &pageSize, 7)
	members := etcdtest.StartCluster(t, 3)
	var next atomic.Int64
	member := func() *etcdtest.Member { return members[next.Add(1)%int64(len(members))] }
	storetest.Run(t, storetest.Backend{
		Open: func(t *testing.T, now func() time.Time) approval.Store { return mustStore(t, member(), now) },
		Replica: func(t *testing.T, s approval.Store) approval.Store {
			return mustStoreAt(t, member(), s.(*Store).prefix, time.Now)
		},
	})
}
