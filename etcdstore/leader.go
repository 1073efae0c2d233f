package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// DefaultLeaseTTL is how long a leader that stopped renewing its lease
// stays leader.
const DefaultLeaseTTL = 10 * time.Second

// ErrNotLeader reports a write refused because the replica that made it no
// longer leads (or never did).
var ErrNotLeader = errors.New("etcdstore: this replica is not the leader")

// Leader elects one replica among those sharing a prefix to do the
// background work, through concurrency.Election on a lease the replica
// keeps alive. The leadership key is election/<lease> under the prefix;
// the oldest such key leads.
//
// Leadership is fenced: a Store from Store.Fenced writes only while the
// leadership key it was elected with still exists with the same
// CreateRevision. A leader that was paused, or cut off, past its lease
// loses the key when etcd expires the lease, so its writes fail with
// ErrNotLeader once another replica may have been elected, whether or not
// it has noticed.
type Leader struct {
	client *clientv3.Client
	pfx    string
	name   string
	ttl    time.Duration

	mu       sync.Mutex
	session  *concurrency.Session
	election *concurrency.Election
	key      string // leadership key while leading
	rev      int64  // its CreateRevision
}

// NewLeader returns a Leader for replicas of s; name tells people which
// replica leads (a host name and process ID) and ttl is its lease (0 means
// DefaultLeaseTTL; etcd counts it in whole seconds, at least one).
func NewLeader(s *Store, name string, ttl time.Duration) *Leader {
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	return &Leader{client: s.client, pfx: s.prefix + "election/", name: name, ttl: ttl}
}

// Campaign blocks until this replica leads, then returns a channel that is
// closed when it has lost the lead: its lease expired or was revoked, or
// Resign or Close was called. It returns ctx's error if ctx ends first;
// ctx bounds only the waiting, not the leadership won.
func (l *Leader) Campaign(ctx context.Context) (<-chan struct{}, error) {
	secs := int64((l.ttl + time.Second - 1) / time.Second)
	lease, err := l.client.Grant(ctx, secs)
	if err != nil {
		return nil, unavailable(ctx, "start a lease", err)
	}
	// The session keeps the lease alive for as long as the client lives,
	// whatever becomes of ctx.
	session, err := concurrency.NewSession(l.client, concurrency.WithLease(lease.ID), concurrency.WithTTL(int(secs)))
	if err != nil {
		l.client.Revoke(context.WithoutCancel(ctx), lease.ID)
		return nil, unavailable(ctx, "keep the lease alive", err)
	}
	election := concurrency.NewElection(session, l.pfx)
	if err := election.Campaign(ctx, l.name); err != nil {
		session.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, unavailable(ctx, "campaign", err)
	}
	l.mu.Lock()
	l.session, l.election = session, election
	l.key, l.rev = election.Key(), election.Rev()
	l.mu.Unlock()
	return session.Done(), nil
}

// Leading reports whether this replica believes it leads. Only a fenced
// write knows for sure.
func (l *Leader) Leading() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.session == nil {
		return false
	}
	select {
	case <-l.session.Done():
		return false
	default:
		return true
	}
}

// Resign gives up the lead, so that another replica takes over at once
// rather than after the lease runs out.
func (l *Leader) Resign(ctx context.Context) error {
	l.mu.Lock()
	session, election := l.session, l.election
	l.session, l.election, l.key, l.rev = nil, nil, "", 0
	l.mu.Unlock()
	if session == nil {
		return nil
	}
	err := election.Resign(ctx)
	if cerr := session.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("etcdstore: resign: %w", err)
	}
	return nil
}

// Close resigns with a short deadline.
func (l *Leader) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return l.Resign(ctx)
}

// fenceCmp returns the compare that holds while this replica's leadership
// key is the one it was elected with, and the key; ErrNotLeader when it
// was never elected or resigned.
func (l *Leader) fenceCmp() (clientv3.Cmp, string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.key == "" {
		return clientv3.Cmp{}, "", ErrNotLeader
	}
	return clientv3.Compare(clientv3.CreateRevision(l.key), "=", l.rev), l.key, nil
}

// holds reports whether kvs, a get of the leadership key, show it still
// this replica's.
func (l *Leader) holds(kvs []*mvccpb.KeyValue) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(kvs) == 1 && kvs[0].CreateRevision == l.rev
}
