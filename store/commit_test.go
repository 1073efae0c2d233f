package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/approval/storetest"
	"rebootbot/internal/testutil"

	bolt "go.etcd.io/bbolt"
)

// holdCommitter starts a write that blocks inside its transaction until the
// returned release is called, and waits until n more writes are queued
// behind it.
func holdCommitter(t *testing.T, db *DB) (queued func(n int), release func()) {
	t.Helper()
	gate := make(chan struct{})
	inside := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- db.group.do(context.Background(), func(tx *bolt.Tx) error {
			close(inside)
			<-gate
			return nil
		})
	}()
	<-inside
	queued = func(n int) {
		t.Helper()
		testutil.Eventually(t, 5*time.Second, func() bool {
			db.group.mu.Lock()
			defer db.group.mu.Unlock()
			return len(db.group.queue)+len(db.group.urgent) >= n
		}, "%d writes to be queued", n)
	}
	release = func() {
		close(gate)
		if err := <-done; err != nil {
			t.Fatalf("held write: %v", err)
		}
	}
	return queued, release
}

func TestWritesQueuedDuringACommitShareTheNext(t *testing.T) {
	db := mustOpen(t, Options{})
	queued, release := holdCommitter(t, db)
	const n = 10
	var wg sync.WaitGroup
	txIDs := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = db.group.do(context.Background(), func(tx *bolt.Tx) error {
				txIDs[i] = tx.ID()
				return tx.Bucket(bucketMeta).Put(fmt.Appendf(nil, "k%d", i), []byte("v"))
			})
		})
	}
	queued(n)
	release()
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("write %d: %v", i, errs[i])
		}
		if txIDs[i] != txIDs[0] {
			t.Errorf("write %d committed in transaction %d, write 0 in %d; want one shared transaction", i, txIDs[i], txIDs[0])
		}
	}
	checkFile(t, db)
}

func TestFailingWriteLeavesItsGroupCommitted(t *testing.T) {
	db := mustOpen(t, Options{})
	queued, release := holdCommitter(t, db)
	errRefused := errors.New("refused")
	put := func(key string, fail bool, runs *int) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			if runs != nil {
				*runs++
			}
			if err := tx.Bucket(bucketMeta).Put([]byte(key), []byte("v")); err != nil {
				return err
			}
			if fail {
				return errRefused
			}
			return nil
		}
	}
	var before, after int
	fns := []func(tx *bolt.Tx) error{put("a", false, &before), put("b", true, nil), put("c", false, &after)}
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Go(func() { errs[i] = db.group.do(context.Background(), fn) })
		queued(i + 1) // keep the queue's order
	}
	release()
	wg.Wait()
	if errs[0] != nil || errs[2] != nil || !errors.Is(errs[1], errRefused) {
		t.Fatalf("errors = %v; want nil, refused, nil", errs)
	}
	db.bolt.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		for key, want := range map[string]bool{"a": true, "b": false, "c": true} {
			if got := meta.Get([]byte(key)) != nil; got != want {
				t.Errorf("key %s stored = %v, want %v", key, got, want)
			}
		}
		return nil
	})
	if before != 2 || after != 1 {
		t.Errorf("runs before the failing write = %d, after = %d; want 2 (rolled back, run again) and 1", before, after)
	}
	checkFile(t, db)
}

func TestConcurrentUpdatesAllDurableAndChained(t *testing.T) {
	db := mustOpen(t, Options{})
	const n = 40
	ids := make([]string, n)
	for i := range n {
		ids[i] = mustCreate(t, db, storetest.NewRequest("U0REQUESTER", fmt.Sprintf("ins-%08d", i)))
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, _, _, errs[i] = db.Update(context.Background(), ids[i], fmt.Sprintf("click-%d", i), func(r *approval.Request) (approval.Change, error) {
				r.Approvals = append(r.Approvals, approval.Approval{User: "U0APPROVER", At: t0})
				return approval.Change{Save: true, Events: []approval.Event{{Type: approval.EventApproved, Actor: "U0APPROVER"}},
					Reply: approval.Reply{Message: "approved"}}, nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Update %s: %v", ids[i], err)
		}
	}
	for i, id := range ids {
		r, err := db.Get(context.Background(), id)
		if err != nil || len(r.Approvals) != 1 {
			t.Errorf("%s after its update: %v, %d approvals; want 1", id, err, len(r.Approvals))
		}
		if reply, ok, err := db.Reply(context.Background(), fmt.Sprintf("click-%d", i)); err != nil || !ok || reply.Message != "approved" {
			t.Errorf("reply for click-%d = %+v, %v, %v", i, reply, ok, err)
		}
	}
	if got, err := db.Verify(context.Background()); err != nil || got != 2*n {
		t.Errorf("Verify = %d, %v; want %d events, intact", got, err, 2*n)
	}
	checkFile(t, db)
}

// checkFile runs bbolt's consistency check over the whole file.
func checkFile(t *testing.T, db *DB) {
	t.Helper()
	err := db.bolt.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if err != nil {
		t.Errorf("bbolt check: %v", err)
	}
}

// txLog records, in commit order, which transaction each named write ran
// in.
type txLog struct {
	mu    sync.Mutex
	names []string
	txs   []int
}

func (l *txLog) record(name string) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if i := slices.Index(l.names, name); i >= 0 { // run again after a failure
			l.names, l.txs = slices.Delete(l.names, i, i+1), slices.Delete(l.txs, i, i+1)
		}
		l.names, l.txs = append(l.names, name), append(l.txs, tx.ID())
		return nil
	}
}

// sizes returns how many writes each transaction had, in order.
func (l *txLog) sizes() []int {
	var out []int
	for _, g := range l.groups() {
		out = append(out, len(g))
	}
	return out
}

// queueWrites queues n writes named prefix-0… (urgent ones with doFirst)
// that record themselves in log, each from a goroutine of wg.
func queueWrites(wg *sync.WaitGroup, db *DB, log *txLog, prefix string, n int, urgent bool) {
	enqueue := db.group.do
	if urgent {
		enqueue = db.group.doFirst
	}
	for i := range n {
		wg.Go(func() { enqueue(context.Background(), log.record(fmt.Sprintf("%s-%d", prefix, i))) })
	}
}

// settable makes db's committer read the returned clock, which only moves
// when told to.
func settable(db *DB) (advance func(time.Duration)) {
	var mu sync.Mutex
	now := time.Unix(1_800_000_000, 0)
	db.group.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	return func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
}

// groups returns the names of the writes of each transaction, in order.
func (l *txLog) groups() [][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out [][]string
	for i, name := range l.names {
		if i == 0 || l.txs[i] != l.txs[i-1] {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], name)
	}
	return out
}

// frozen stops the clock db's committer times queued writes on, so that
// no background write counts as waiting too long however slow the test.
func frozen(db *DB) {
	at := time.Now()
	db.group.now = func() time.Time { return at }
}

func TestUrgentWritesGoAheadOfQueuedBackgroundOnes(t *testing.T) {
	db := mustOpen(t, Options{})
	frozen(db)
	queued, release := holdCommitter(t, db)
	var log txLog
	var wg sync.WaitGroup
	queueWrites(&wg, db, &log, "background", maxGroup, false)
	queued(maxGroup)
	wg.Go(func() { db.group.doFirst(context.Background(), log.record("click")) })
	queued(maxGroup + 1)
	release()
	wg.Wait()
	groups := log.groups()
	if len(groups) == 0 || !slices.Equal(groups[0], []string{"click"}) {
		t.Fatalf("transactions after the held one: %q; want the click first and alone", groups)
	}
}

// TestBackgroundWritesStaySmallBesideUrgentOnes checks the size of the
// transactions after a click: the background writes queued behind it go
// in a small transaction first, so that a click arriving meanwhile waits
// for little, and in full ones once no click came.
func TestBackgroundWritesStaySmallBesideUrgentOnes(t *testing.T) {
	db := mustOpen(t, Options{NoSync: true})
	frozen(db)
	queued, release := holdCommitter(t, db)
	var log txLog
	var wg sync.WaitGroup
	const background = maxGroupBeside + maxGroup
	queueWrites(&wg, db, &log, "background", background, false)
	queued(background)
	wg.Go(func() { db.group.doFirst(context.Background(), log.record("click")) })
	queued(background + 1)
	release()
	wg.Wait()
	sizes := log.sizes()
	if want := []int{1, maxGroupBeside, maxGroup}; !slices.Equal(sizes, want) {
		t.Errorf("transaction sizes after the held one = %v; want %v (the click alone, then a small background group, then a full one)", sizes, want)
	}
}

// TestBackgroundWritesNotStarvedByUrgentOnes checks that background
// writes waiting maxBackgroundWait go ahead of the urgent writes queued
// after them, all in one transaction, so that executions go on during a
// long burst of clicks.
func TestBackgroundWritesNotStarvedByUrgentOnes(t *testing.T) {
	db := mustOpen(t, Options{NoSync: true})
	advance := settable(db)
	queued, release := holdCommitter(t, db)
	var log txLog
	var wg sync.WaitGroup
	const background = maxGroupBeside + 4
	queueWrites(&wg, db, &log, "background", background, false)
	queued(background)
	advance(maxBackgroundWait)
	wg.Go(func() { db.group.doFirst(context.Background(), log.record("click")) })
	queued(background + 1)
	release()
	wg.Wait()
	groups := log.groups()
	if len(groups) != 2 || len(groups[0]) != background || !slices.Equal(groups[1], []string{"click"}) {
		t.Errorf("transactions after the held one: %q; want the %d background writes, waiting %v, first and together, then the click", groups, background, maxBackgroundWait)
	}
}

// TestUrgentWritesWaitForOneBackgroundTransactionAtMost checks that a
// backlog of background writes that have all waited too long, as behind
// a burst of executions, holds a click back by one transaction, not by
// all of them.
func TestUrgentWritesWaitForOneBackgroundTransactionAtMost(t *testing.T) {
	db := mustOpen(t, Options{NoSync: true})
	advance := settable(db)
	queued, release := holdCommitter(t, db)
	var log txLog
	var wg sync.WaitGroup
	const background = 3 * maxGroup
	queueWrites(&wg, db, &log, "background", background, false)
	queued(background)
	advance(maxBackgroundWait)
	queueWrites(&wg, db, &log, "click", 2, true)
	queued(background + 2)
	release()
	wg.Wait()
	sizes := log.sizes()
	if want := []int{maxGroup, 2, maxGroup, maxGroup}; !slices.Equal(sizes, want) {
		t.Errorf("transaction sizes after the held one = %v; want %v (one full background group, then the clicks, then the rest)", sizes, want)
	}
}

// TestLargeWritesSplitIntoSeveralTransactions queues writes that each
// change entries spread over a large bucket, as a fleet request storing
// its results does, and checks that they do not all share one
// transaction: each transaction holds about maxGroupNodes nodes in memory
// at most, and every write is still committed, in order.
func TestLargeWritesSplitIntoSeveralTransactions(t *testing.T) {
	db := mustOpen(t, Options{NoSync: true})
	spread := []byte("spread")
	const keys, stride = 20000, 50
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(spread)
		if err != nil {
			return err
		}
		for i := range keys {
			if err := b.Put(fmt.Appendf(nil, "k%05d", i), make([]byte, 100)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	queued, release := holdCommitter(t, db)
	const n = 6
	var wg sync.WaitGroup
	txIDs := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = db.group.do(context.Background(), func(tx *bolt.Tx) error {
				txIDs[i] = tx.ID()
				b := tx.Bucket(spread)
				for k := i; k < keys; k += stride {
					if err := b.Put(fmt.Appendf(nil, "k%05d", k), []byte("changed")); err != nil {
						return err
					}
				}
				return nil
			})
		})
		queued(i + 1) // keep the queue's order
	}
	release()
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("write %d: %v", i, errs[i])
		}
		if i > 0 && txIDs[i] < txIDs[i-1] {
			t.Errorf("write %d committed in transaction %d, before write %d's %d", i, txIDs[i], i-1, txIDs[i-1])
		}
	}
	if txIDs[n-1] == txIDs[0] {
		t.Errorf("all %d writes shared transaction %d; want them split once a transaction holds %d nodes", n, txIDs[0], maxGroupNodes)
	}
	db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(spread)
		for i := range n {
			if got := string(b.Get(fmt.Appendf(nil, "k%05d", i))); got != "changed" {
				t.Errorf("write %d's first key holds %q, want it changed", i, got)
			}
		}
		return nil
	})
	checkFile(t, db)
}

// putKey is a write function that stores key in the meta bucket.
func putKey(key string) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put([]byte(key), []byte("written")) }
}

// hasKey reports whether the meta bucket holds key.
func hasKey(t *testing.T, db *DB, key string) bool {
	t.Helper()
	var ok bool
	if err := db.bolt.View(func(tx *bolt.Tx) error { ok = tx.Bucket(bucketMeta).Get([]byte(key)) != nil; return nil }); err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestWriteDeadlineInQueue ends the deadline of a write waiting behind a
// commit in progress: it is taken out of the queue, never runs, and its
// caller is told that nothing was recorded, without the file being
// counted as failing.
func TestWriteDeadlineInQueue(t *testing.T) {
	db := mustOpen(t, Options{})
	queued, release := holdCommitter(t, db)
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- db.updateDelivery(ctx, putKey("click")) }()
	queued(1)
	cancel(context.DeadlineExceeded)
	err := <-done
	if approval.ErrorKind(err) != approval.Unavailable || approval.ErrorMessage(err) != approval.NotRecordedMessage {
		t.Errorf("write whose deadline ended in the queue: %v (kind %s), want %q", err, approval.ErrorKind(err), approval.NotRecordedMessage)
	}
	release()
	if hasKey(t, db, "click") {
		t.Error("the write left out of the queue was committed")
	}
	if err := db.Writable(); err != nil {
		t.Errorf("a caller giving up marked the file unwritable: %v", err)
	}
	checkFile(t, db)
}

// TestWriteDeadlineInFlight ends the deadline of a write already in a
// transaction: it may commit, so its caller waits within the grace and
// gets the outcome, or past the grace is told the outcome is not known,
// never that nothing was recorded; the transaction commits all the same.
func TestWriteDeadlineInFlight(t *testing.T) {
	for _, tt := range []struct {
		name  string
		grace time.Duration
	}{{"OutcomeWithinGrace", time.Minute}, {"OutcomeUnknown", time.Millisecond}} {
		t.Run(tt.name, func(t *testing.T) {
			db := mustOpen(t, Options{})
			db.group.grace = tt.grace
			queued, release := holdCommitter(t, db)
			ctx, cancel := context.WithCancelCause(context.Background())
			// The click's transaction stays open until gate closes.
			inside, gate := make(chan struct{}), make(chan struct{})
			var once sync.Once
			done := make(chan error, 1)
			go func() {
				done <- db.updateDelivery(ctx, func(tx *bolt.Tx) error {
					once.Do(func() { close(inside) })
					<-gate
					return putKey("click")(tx)
				})
			}()
			queued(1)
			release()
			<-inside
			cancel(context.DeadlineExceeded)
			var err error
			if tt.grace > time.Second {
				close(gate)
				err = <-done
				if err != nil {
					t.Errorf("write committed within the grace: %v, want its success", err)
				}
			} else {
				err = <-done
				close(gate)
				if approval.ErrorKind(err) != approval.Unavailable || approval.ErrorMessage(err) != approval.UnconfirmedMessage {
					t.Errorf("write in flight past the grace: %v (kind %s), want %q", err, approval.ErrorKind(err), approval.UnconfirmedMessage)
				}
			}
			testutil.Eventually(t, 5*time.Second, func() bool {
				db.group.mu.Lock()
				defer db.group.mu.Unlock()
				return !db.group.running
			}, "the transaction its caller left to end")
			if !hasKey(t, db, "click") {
				t.Error("the write that was in flight was not committed")
			}
			if err := db.Writable(); err != nil {
				t.Errorf("a caller giving up marked the file unwritable: %v", err)
			}
			checkFile(t, db)
		})
	}
}

// TestOnCommitToldOfEachTransaction checks what OnCommit is told: each
// committed transaction once, with its writes and its queue; a write that
// failed is not counted.
func TestOnCommitToldOfEachTransaction(t *testing.T) {
	var mu sync.Mutex
	var commits []Commit
	db := mustOpen(t, Options{NoSync: true, OnCommit: func(c Commit) {
		mu.Lock()
		commits = append(commits, c)
		mu.Unlock()
	}})
	mu.Lock()
	commits = nil // the file's set-up
	mu.Unlock()
	frozen(db)
	queued, release := holdCommitter(t, db)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() { db.group.do(context.Background(), putKey(fmt.Sprintf("background-%d", i))) })
	}
	wg.Go(func() {
		db.group.do(context.Background(), func(tx *bolt.Tx) error { return errors.New("refused") })
	})
	queued(4)
	wg.Go(func() { db.group.doFirst(context.Background(), putKey("click")) })
	queued(5)
	release()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	var got []string
	for _, c := range commits {
		got = append(got, fmt.Sprintf("%d urgent=%v", c.Writes, c.Urgent))
	}
	// The held write, the click alone, then the three background writes
	// without the failing one.
	want := []string{"1 urgent=false", "1 urgent=true", "3 urgent=false"}
	if !slices.Equal(got, want) {
		t.Errorf("commits told = %q, want %q", got, want)
	}
}
