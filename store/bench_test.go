package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/approval/storetest"
	"rebootbot/auditapi"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if bigLog.dir != "" {
		os.RemoveAll(bigLog.dir)
	}
	os.Exit(code)
}

// BenchmarkCreateApprove measures requests created and approved per second
// with fsync on: a Create (claim, request, requested event, reply) and an
// Update that approves (request, approved event, reply), two durable
// transactions.
func BenchmarkCreateApprove(b *testing.B) {
	db := mustOpen(b, Options{})
	ctx := context.Background()
	n := 0
	for b.Loop() {
		r := storetest.NewRequest("U0ALICE", fmt.Sprintf("ins-%08x", n))
		if err := db.Create(ctx, r, fmt.Sprintf("cmd-%d", n), approval.Reply{Message: "posted"}, []approval.Event{storetest.Requested(r)}); err != nil {
			b.Fatal(err)
		}
		_, _, _, err := db.Update(ctx, r.ID, fmt.Sprintf("click-%d", n), func(r *approval.Request) (approval.Change, error) {
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
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "requests/s")
}

// bigLogEvents is the size of the log the lookup benchmarks search.
const bigLogEvents = 1_000_000

// bigLog is a database holding bigLogEvents events, built once per test
// process the first time a benchmark needs it and removed by TestMain.
var bigLog struct {
	once sync.Once
	dir  string
	path string
	err  error
}

const (
	bigUsers     = 500
	bigApprovers = 20
	bigInstances = 5000
)

func bigUser(i int) string     { return fmt.Sprintf("U0USER%04d", i%bigUsers) }
func bigInstance(i int) string { return fmt.Sprintf("ins-%08d", i%bigInstances) }

// mustBigLog returns the path of the 1,000,000-event database. Its events
// are the lives of 125,000 requests, eight events each (requested, two
// approvals, executing, intent, call, result, completed), by 500
// requesters and 20 approvers on 5,000 instances, a second apart.
func mustBigLog(b *testing.B) string {
	b.Helper()
	if testing.Short() {
		b.Skip("builds a 1,000,000-event log")
	}
	bigLog.once.Do(func() {
		bigLog.dir, bigLog.err = os.MkdirTemp("", "rebootbot-bench-")
		if bigLog.err != nil {
			return
		}
		bigLog.path = filepath.Join(bigLog.dir, "big.db")
		start := time.Now()
		db, err := Open(bigLog.path, Options{NoSync: true, Now: tick(t0)})
		if err != nil {
			bigLog.err = err
			return
		}
		defer db.Close()
		types := []approval.EventType{
			approval.EventRequested, approval.EventApproved, approval.EventApproved, approval.EventExecuting,
			approval.EventRebootIntent, approval.EventRebootCalled, approval.EventInstanceSucceeded, approval.EventCompleted,
		}
		mustAppendBulk(b, db, bigLogEvents, func(i int) (approval.Event, string, []string) {
			req := i / len(types)
			requester := bigUser(req * 7)
			instances := []string{bigInstance(req * 13)}
			if req%3 == 0 {
				instances = append(instances, bigInstance(req*13+1))
			}
			e := approval.Event{
				RequestID: approval.FormatRequestID(uint64(req + 1)),
				Type:      types[i%len(types)],
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
		})
		st, _ := os.Stat(bigLog.path)
		b.Logf("built a %d-event log (%d MiB) in %v", bigLogEvents, st.Size()>>20, time.Since(start).Round(time.Millisecond))
	})
	if bigLog.err != nil {
		b.Fatal(bigLog.err)
	}
	return bigLog.path
}

// BenchmarkAuditLatest10 looks up the latest 10 events of an instance, a
// requester, an approver and a request in the 1,000,000-event log, a
// different key each time.
func BenchmarkAuditLatest10(b *testing.B) {
	path := mustBigLog(b)
	db := mustOpenPath(b, path, Options{ReadOnly: true})
	ctx := context.Background()
	queries := map[string]func(i int) approval.AuditQuery{
		"Instance": func(i int) approval.AuditQuery { return approval.AuditQuery{Instance: bigInstance(i * 37), Limit: 10} },
		"User":     func(i int) approval.AuditQuery { return approval.AuditQuery{User: bigUser(i * 11), Limit: 10} },
		"Approver": func(i int) approval.AuditQuery {
			return approval.AuditQuery{User: fmt.Sprintf("U0APPR%02d", i%bigApprovers), Limit: 10}
		},
		"Request": func(i int) approval.AuditQuery {
			return approval.AuditQuery{RequestID: approval.FormatRequestID(uint64(1 + i*997%125000)), Limit: 10}
		},
		"InstanceAndUser": func(i int) approval.AuditQuery {
			// The requester of request k is user 7k, its instance 13k.
			k := i * 101 % 125000
			return approval.AuditQuery{Instance: bigInstance(k * 13), User: bigUser(k * 7), Limit: 10}
		},
	}
	for _, name := range []string{"Instance", "User", "Approver", "Request", "InstanceAndUser"} {
		query := queries[name]
		b.Run(name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				got := 0
				if err := db.Audit(ctx, query(i), func(*approval.Event) error { got++; return nil }); err != nil {
					b.Fatal(err)
				}
				if got == 0 {
					b.Fatalf("%+v found nothing", query(i))
				}
				i++
			}
		})
	}
}

// BenchmarkAuditJSON exports the whole 1,000,000-event log as JSON lines,
// as `bot audit list --format jsonl` does: from the file, and through a
// running bot's audit endpoint while this DB holds the file.
func BenchmarkAuditJSON(b *testing.B) {
	path := mustBigLog(b)
	run := func(b *testing.B, scan func(ctx context.Context, q approval.AuditQuery, fn func(raw []byte) error) error) {
		for b.Loop() {
			var out countingWriter
			err := scan(context.Background(), approval.AuditQuery{}, func(raw []byte) error {
				out.Write(raw)
				_, err := out.Write([]byte{'\n'})
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			if out.lines != bigLogEvents {
				b.Fatalf("exported %d events, want %d", out.lines, bigLogEvents)
			}
		}
		b.ReportMetric(float64(bigLogEvents*b.N)/b.Elapsed().Seconds(), "events/s")
	}
	b.Run("File", func(b *testing.B) {
		db := mustOpenPath(b, path, Options{ReadOnly: true})
		run(b, db.AuditJSON)
		db.Close()
	})
	b.Run("Admin", func(b *testing.B) {
		holder := mustOpenPath(b, path, Options{})
		srv := auditapi.NewServer(holder)
		if err := srv.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		defer func() {
			srv.Close()
			holder.Close()
		}()
		client, err := auditapi.Dial(path)
		if err != nil {
			b.Fatal(err)
		}
		run(b, client.AuditJSON)
	})
}

// BenchmarkVerify checks the chain of the 1,000,000-event log.
func BenchmarkVerify(b *testing.B) {
	db := mustOpenPath(b, mustBigLog(b), Options{ReadOnly: true})
	for b.Loop() {
		n, err := db.Verify(context.Background())
		if err != nil || n != bigLogEvents {
			b.Fatalf("Verify = %d, %v", n, err)
		}
	}
	b.ReportMetric(float64(bigLogEvents*b.N)/b.Elapsed().Seconds(), "events/s")
}

// countingWriter counts the lines written to it.
type countingWriter struct{ lines int }

func (w *countingWriter) Write(p []byte) (int, error) {
	for _, c := range p {
		if c == '\n' {
			w.lines++
		}
	}
	return len(p), nil
}
