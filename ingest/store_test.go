package ingest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dialstream/dialstream/schemas"
)

func testStore(now time.Time, retention time.Duration, max int) *store {
	s := newStore(retention, max)
	s.now = func() time.Time { return now }
	return s
}

func storeIDs(s *store, ws string) []string {
	var out []string
	s.list(ws, listFilter{}, 1<<30, func(c *callRec) { out = append(out, c.id) })
	return out
}

// Past INGEST_CALLS_MAX the oldest call (by requested_at) goes first, and a
// call older than everything kept is not taken in at all.
func TestStoreBoundByCount(t *testing.T) {
	s := testStore(t0.Add(time.Hour), 24*time.Hour, 3)
	var evicted []evictReason
	s.onEvict = func(r evictReason) { evicted = append(evicted, r) }
	for _, i := range []int{2, 1, 3, 4} {
		r := demoCall(i, t0.Add(time.Duration(i)*time.Second)).requested()
		s.putRequest(&r, 0, int64(i), false)
	}
	if got, want := storeIDs(s, "ws_demo"), []string{demoCall(4, t0).id, demoCall(3, t0).id, demoCall(2, t0).id}; !slices.Equal(got, want) {
		t.Fatalf("%v, want %v", got, want)
	}
	old := demoCall(0, t0).requested()
	if s.putRequest(&old, 0, 0, false) || s.len() != 3 {
		t.Fatal("a call older than every kept one was taken in")
	}
	// Its late events are not taken either.
	f := demoCall(0, t0)
	if s.putEvent(facts(f.event(1, schemas.StatusQueued, t0)), "x", storedRecord{}) {
		t.Fatal("event of a dropped call taken")
	}
	if !slices.Equal(evicted, []evictReason{evictCount}) {
		t.Fatalf("evictions %v", evicted)
	}
}

func ptr[T any](v T) *T { return &v }

func facts(ev schemas.CallEvent) *eventFacts {
	return &eventFacts{CallID: ev.CallID, WorkspaceID: ev.WorkspaceID, Sequence: ev.Sequence, Status: ev.Status,
		OccurredAt: ev.OccurredAt, RequestedAt: ev.RequestedAt, CallAgentID: ev.CallAgentID, Outcome: ev.Outcome}
}

// Calls past INGEST_CALLS_RETENTION are swept, and records of such calls
// are not taken in.
func TestStoreBoundByAge(t *testing.T) {
	now := t0.Add(24 * time.Hour)
	s := testStore(now, 24*time.Hour, 100)
	for i := range 5 {
		r := demoCall(i, t0.Add(time.Duration(i)*time.Hour)).requested()
		// Call 0 is exactly as old as the retention: still in.
		if !s.putRequest(&r, 0, int64(i), false) {
			t.Fatalf("call %d not taken", i)
		}
	}
	s.now = func() time.Time { return now.Add(150 * time.Minute) }
	if n := s.evict(); n != 3 {
		t.Fatalf("evicted %d, want 3", n)
	}
	if got := storeIDs(s, "ws_demo"); !slices.Equal(got, []string{demoCall(4, t0).id, demoCall(3, t0).id}) {
		t.Fatalf("%v", got)
	}
	old := demoCall(9, t0).requested()
	if s.putRequest(&old, 0, 9, false) {
		t.Fatal("a request past the retention was taken in")
	}
}

// The first record of a call fixes its workspace: a record naming another
// workspace for the same id never reaches that workspace.
func TestStoreForeignRecordsIgnored(t *testing.T) {
	s := testStore(t0.Add(time.Hour), 24*time.Hour, 100)
	f := demoCall(1, t0)
	r := f.requested()
	s.putRequest(&r, 0, 1, false)
	g := f
	g.ws = "ws_other"
	gr := g.requested()
	if s.putRequest(&gr, 0, 0, false) {
		t.Fatal("foreign request taken")
	}
	if s.putEvent(facts(g.event(1, schemas.StatusQueued, t0)), "x", storedRecord{}) {
		t.Fatal("foreign event taken")
	}
	if s.putAttempt(ptr(g.attempt(1, schemas.StatusQueued, 1, t0, 200, "", schemas.WebhookSuccess))) {
		t.Fatal("foreign attempt taken")
	}
	if s.putCancel(&schemas.CallCancel{CallID: f.id, WorkspaceID: "ws_other", RequestedAt: t0}) {
		t.Fatal("foreign cancel taken")
	}
	if s.withCall("ws_other", f.id, func(*callRec) {}) {
		t.Fatal("visible to ws_other")
	}
}

// Two records for one call id (a retry that reached another replica): the
// first in the topic is the job, whichever is seen first.
func TestStoreDuplicateRequests(t *testing.T) {
	s := testStore(t0.Add(time.Hour), 24*time.Hour, 100)
	f := demoCall(1, t0.Add(2*time.Second))
	second := f.requested()
	s.putRequest(&second, 4, 20, true) // this replica wrote the retry
	f.at = t0
	first := f.requested()
	if !s.putRequest(&first, 4, 10, false) {
		t.Fatal("the earlier record did not win")
	}
	again := second
	if s.putRequest(&again, 4, 20, false) {
		t.Fatal("the later record replaced the earlier")
	}
	var key callKey
	var job string
	s.withCall("ws_demo", f.id, func(c *callRec) { key, job = c.key, c.summary(false).JobID })
	if job != "4-10" || key.at != t0.UnixNano() {
		t.Fatalf("job %s key %v", job, key)
	}
}

// Delivery attempts alone do not make a call visible; the newest
// maxDeliveriesPerCall are kept.
func TestStoreDeliveries(t *testing.T) {
	s := testStore(t0.Add(time.Hour), 24*time.Hour, 100)
	f := demoCall(1, t0)
	for i := range maxDeliveriesPerCall + 5 {
		s.putAttempt(ptr(f.attempt(1, schemas.StatusQueued, i+1, t0.Add(time.Duration(i)*time.Second), 500, "", schemas.WebhookRetry)))
	}
	if s.withCall("ws_demo", f.id, func(*callRec) {}) {
		t.Fatal("a call with only delivery attempts is visible")
	}
	r := f.requested()
	s.putRequest(&r, 0, 1, false)
	var ds []Delivery
	s.withCall("ws_demo", f.id, func(c *callRec) { ds = c.deliveryViews() })
	if len(ds) != maxDeliveriesPerCall || ds[0].Attempt != 6 || ds[len(ds)-1].Attempt != maxDeliveriesPerCall+5 {
		t.Fatalf("%d deliveries, first attempt %d", len(ds), ds[0].Attempt)
	}
}

// Paging never repeats or skips a call, whatever arrives between pages
// (calls newer than the cursor, older ones read late from another
// partition, events that change statuses).
func TestStorePagingStable(t *testing.T) {
	s := testStore(t0.Add(time.Hour), 24*time.Hour, 10_000)
	put := func(i int, at time.Time) {
		r := demoCall(i, at).requested()
		s.putRequest(&r, int32(i%3), int64(i), false)
	}
	// Same requested_at for several calls: the id breaks the tie.
	for i := range 50 {
		put(i, t0.Add(time.Duration(i/5)*time.Second))
	}
	before := storeIDs(s, "ws_demo")
	var seen []string
	var after *callKey
	for page := 0; page < 100; page++ {
		var got []string
		next := s.list("ws_demo", listFilter{after: after}, 7, func(c *callRec) { got = append(got, c.id) })
		seen = append(seen, got...)
		put(1000+page, t0.Add(time.Hour+time.Duration(page)*time.Second)) // newer
		f := demoCall(page%50, t0)
		s.putEvent(facts(f.event(1, schemas.StatusQueued, t0)), fmt.Sprint(page), storedRecord{})
		if next == nil {
			break
		}
		after = next
	}
	if !slices.Equal(seen, before) {
		t.Fatalf("pages\n%v\nwant\n%v", seen, before)
	}
}
