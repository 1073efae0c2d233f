package etcdstore

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/approval/storetest"
	"rebootbot/etcdstore/etcdtest"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

// benchEvents is the size of the log BenchmarkAuditLatest10 searches:
// REBOOTBOT_BENCH_EVENTS, or 100,000.
func benchEvents(b *testing.B) int {
	if s := os.Getenv("REBOOTBOT_BENCH_EVENTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1000 {
			b.Fatalf("REBOOTBOT_BENCH_EVENTS=%q: want a number of at least 1000", s)
		}
		return n
	}
	return 100_000
}

// The log's shape, as in the bbolt store's benchmarks: the lives of
// requests of eight events each by 500 requesters and 20 approvers on
// 5,000 instances.
const (
	bigUsers     = 500
	bigApprovers = 20
	bigInstances = 5000
)

func bigUser(i int) string     { return fmt.Sprintf("U0USER%04d", i%bigUsers) }
func bigInstance(i int) string { return fmt.Sprintf("ins-%08d", i%bigInstances) }

var bigTypes = []approval.EventType{
	approval.EventRequested, approval.EventApproved, approval.EventApproved, approval.EventExecuting,
	approval.EventRebootIntent, approval.EventRebootCalled, approval.EventInstanceSucceeded, approval.EventCompleted,
}

// bigEvent returns event i of the log, the requester and instances of its
// request.
func bigEvent(i int) (approval.Event, string, []string) {
	req := i / len(bigTypes)
	requester := bigUser(req * 7)
	instances := []string{bigInstance(req * 13)}
	if req%3 == 0 {
		instances = append(instances, bigInstance(req*13+1))
	}
	e := approval.Event{
		RequestID: approval.FormatRequestID(uint64(req + 1)),
		Type:      bigTypes[i%len(bigTypes)],
		Actor:     approval.ActorBot,
		Instances: instances,
	}
	switch e.Type {
	case approval.EventRequested:
		e.Actor = requester
		e.Details = approval.Details{Reason: "apply kernel security update, ticket OPS-1234", StopType: approval.Soft, Region: "ap-guangzhou", Channel: "C0OPS"}
	case approval.EventApproved:
		e.Actor = fmt.Sprintf("U0APPR%02d", (i+req)%bigApprovers)
		e.Details = approval.Details{Approvals: []string{e.Actor}, Required: 2}
	case approval.EventRebootCalled:
		e.Details = approval.Details{CloudRequestID: fmt.Sprintf("6f1c2a8e-0000-4000-8000-%012d", req)}
	case approval.EventInstanceSucceeded:
		e.Details = approval.Details{Duration: "42s"}
	case approval.EventCompleted:
		e.Details = approval.Details{Outcome: "Succeeded"}
	}
	return e, requester, instances
}

// mustLoad appends n events to s's log in large transactions, through the
// appender the Store's methods use.
func mustLoad(b *testing.B, s *Store, n int) {
	b.Helper()
	ctx := context.Background()
	const batch = 1000
	for start := 0; start < n; start += batch {
		got, _, err := s.read(ctx, []clientv3.Op{clientv3.OpGet(s.headKey())})
		if err != nil {
			b.Fatal(err)
		}
		h, rev, err := readHead(got[0])
		if err != nil {
			b.Fatal(err)
		}
		app := &appender{s: s, head: h, headRev: rev}
		for i := start; i < min(start+batch, n); i++ {
			e, requester, instances := bigEvent(i)
			if err := app.append(e, requester, instances); err != nil {
				b.Fatal(err)
			}
		}
		cmps, ops, err := app.finish()
		if err != nil {
			b.Fatal(err)
		}
		if ok, err := s.write(ctx, cmps, ops); err != nil || !ok {
			b.Fatalf("load events %d…: committed %v, %v", start, ok, err)
		}
	}
}

// bigMember starts a member with room for a large log.
func bigMember(b *testing.B) *etcdtest.Member {
	return etcdtest.Start(b, func(c *embed.Config) { c.QuotaBackendBytes = 8 << 30 })
}

// BenchmarkAuditLatest10 looks up the latest 10 events of an instance, a
// requester, an approver and a request in a large log on a single local
// member, a different key each time, and reports the 99th percentile
// besides the mean.
func BenchmarkAuditLatest10(b *testing.B) {
	n := benchEvents(b)
	m := bigMember(b)
	s := mustStore(b, m, storetest.Tick(storetest.T0))
	start := time.Now()
	mustLoad(b, s, n)
	b.Logf("loaded %d events in %v", n, time.Since(start).Round(time.Millisecond))
	requests := n / len(bigTypes)
	ctx := context.Background()
	queries := map[string]func(i int) approval.AuditQuery{
		"Instance": func(i int) approval.AuditQuery { return approval.AuditQuery{Instance: bigInstance(i * 37), Limit: 10} },
		"User":     func(i int) approval.AuditQuery { return approval.AuditQuery{User: bigUser(i * 11), Limit: 10} },
		"Approver": func(i int) approval.AuditQuery {
			return approval.AuditQuery{User: fmt.Sprintf("U0APPR%02d", i%bigApprovers), Limit: 10}
		},
		"Request": func(i int) approval.AuditQuery {
			return approval.AuditQuery{RequestID: approval.FormatRequestID(uint64(1 + i*997%requests)), Limit: 10}
		},
		"InstanceAndUser": func(i int) approval.AuditQuery {
			// The requester of request k is user 7k, its instance 13k.
			k := i * 101 % requests
			return approval.AuditQuery{Instance: bigInstance(k * 13), User: bigUser(k * 7), Limit: 10}
		},
		"InstanceOldest": func(i int) approval.AuditQuery {
			return approval.AuditQuery{Instance: bigInstance(i * 37), Limit: 10, Oldest: true}
		},
	}
	for _, name := range []string{"Instance", "User", "Approver", "Request", "InstanceAndUser", "InstanceOldest"} {
		query := queries[name]
		b.Run(name, func(b *testing.B) {
			var took []time.Duration
			i := 0
			for b.Loop() {
				got := 0
				t0 := time.Now()
				if err := s.Audit(ctx, query(i), func(*approval.Event) error { got++; return nil }); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(t0))
				if got == 0 {
					b.Fatalf("%+v found nothing", query(i))
				}
				i++
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// BenchmarkCreateApprove measures requests created and approved per second
// on a single local member: a Create (claim, request, requested event,
// reply) and an approving Update, two transactions of a read and a
// conditioned write each. Parallel runs them from two clients at once, as
// two replicas would, contending for the log's head.
func BenchmarkCreateApprove(b *testing.B) {
	m := etcdtest.Start(b)
	run := func(b *testing.B, s *Store, n int) {
		ctx := context.Background()
		r := storetest.NewRequest("U0ALICE", fmt.Sprintf("ins-%08x", n))
		if err := s.Create(ctx, r, fmt.Sprintf("cmd-%d", n), approval.Reply{Message: "posted"}, []approval.Event{storetest.Requested(r)}); err != nil {
			b.Fatal(err)
		}
		_, _, _, err := s.Update(ctx, r.ID, fmt.Sprintf("click-%d", n), func(r *approval.Request) (approval.Change, error) {
			r.Approvals = append(r.Approvals, approval.Approval{User: "U0BOB", At: time.Now()})
			r.State = approval.Approved
			return approval.Change{
				Save:   true,
				Events: []approval.Event{{Type: approval.EventApproved, Actor: "U0BOB", Details: approval.Details{Approvals: []string{"U0BOB"}, Required: 1}}},
				Reply:  approval.Reply{Message: "Approved."},
			}, nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Run("OneClient", func(b *testing.B) {
		s := mustStore(b, m, time.Now)
		n := 0
		for b.Loop() {
			run(b, s, n)
			n++
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "requests/s")
	})
	b.Run("TwoClients", func(b *testing.B) {
		a := mustStore(b, m, time.Now)
		replicas := []*Store{a, mustStoreAt(b, m, a.Prefix(), time.Now)}
		var mu sync.Mutex
		next := 0
		b.SetParallelism(2)
		b.RunParallel(func(pb *testing.PB) {
			mu.Lock()
			s := replicas[next%2]
			next++
			mu.Unlock()
			for pb.Next() {
				mu.Lock()
				n := next
				next++
				mu.Unlock()
				run(b, s, n)
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
	})
}

// BenchmarkCreateApproveCluster is BenchmarkCreateApprove on a three-member
// cluster on loopback with fsync on, from 20 goroutines at once: through
// one replica, whose writes share transactions, and through two, each
// talking to a different member.
func BenchmarkCreateApproveCluster(b *testing.B) {
	members := etcdtest.StartCluster(b, 3, func(c *embed.Config) { c.UnsafeNoFsync = false })
	var next sync.Mutex
	n := 0
	number := func() int {
		next.Lock()
		defer next.Unlock()
		n++
		return n
	}
	run := func(b *testing.B, replicas []*Store) {
		ctx := context.Background()
		var turn sync.Mutex
		which := 0
		b.SetParallelism(10)
		b.RunParallel(func(pb *testing.PB) {
			turn.Lock()
			s := replicas[which%len(replicas)]
			which++
			turn.Unlock()
			for pb.Next() {
				i := number()
				r := storetest.NewRequest("U0ALICE", fmt.Sprintf("ins-%08x", i))
				if err := s.Create(ctx, r, fmt.Sprintf("cmd-%d", i), approval.Reply{Message: "posted"}, []approval.Event{storetest.Requested(r)}); err != nil {
					b.Error(err)
					return
				}
				if _, _, _, err := s.Update(ctx, r.ID, fmt.Sprintf("click-%d", i), approve("U0BOB")); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
	}
	b.Run("OneReplica", func(b *testing.B) {
		run(b, []*Store{mustStore(b, members[0], time.Now)})
	})
	b.Run("TwoReplicas", func(b *testing.B) {
		a := mustStore(b, members[0], time.Now)
		run(b, []*Store{a, mustStoreAt(b, members[1], a.Prefix(), time.Now)})
	})
}
