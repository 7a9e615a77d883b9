package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/internal/callrecords/dbtest"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// The read-your-writes of ownwrites.go against a real SQLite call records
// database, with the recorder's writes made as the recorder makes them
// (the request and its partition's next offset in one transaction).

// ownEnv is an ownWrites with budgets that timing cannot reach unless the
// test wants it to.
type ownEnv struct {
	st  *callrecords.Store
	own *ownWrites
	reg *prometheus.Registry
}

func newOwnEnv(t *testing.T, readBudget, fallback time.Duration) *ownEnv {
	t.Helper()
	st := dbtest.Open(t, callrecords.SQLite, callrecords.Options{Retention: callrecords.DefaultRetention})
	settled := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "settled"}, []string{"by"})
	reg := prometheus.NewRegistry()
	reg.MustRegister(settled)
	own := newOwnWrites(st, callrecords.DefaultRecorderGroup, settled, discardLogger())
	own.readBudget, own.fallback = readBudget, fallback
	return &ownEnv{st: st, own: own, reg: reg}
}

// accept notes f's request as POST does after Kafka's ack at partition/offset.
func (e *ownEnv) accept(t *testing.T, f fixture, partition int32, offset int64) {
	t.Helper()
	rec := f.request(t, partition, offset)
	req := f.requested()
	if err := e.own.put(context.Background(), &req, rec.Value, partition, offset); err != nil {
		t.Fatal(err)
	}
}

// record writes f's request as the recorder does, and its stored next
// offset on the partition (from: the offset stored before, or NoOffset).
func (e *ownEnv) record(t *testing.T, f fixture, partition int32, offset, from int64) {
	t.Helper()
	rec := f.request(t, partition, offset)
	req := f.requested()
	ctx := context.Background()
	if err := e.st.Write(ctx, func(w *callrecords.Writer) error {
		if _, err := w.PutRequest(ctx, &req, rec.Value, partition, offset, false); err != nil {
			return err
		}
		return w.Advance(ctx, callrecords.DefaultRecorderGroup, schemas.TopicRequested, partition, from, offset+1)
	}); err != nil {
		t.Fatal(err)
	}
}

func (e *ownEnv) count(t *testing.T, by string) int {
	t.Helper()
	return int(gather(t, e.reg)[`settled{by="`+by+`"}`])
}

// local says whether f's row is ingest's own write (true) or the
// recorder's; it fails the test when there is no row.
func (e *ownEnv) local(t *testing.T, f fixture) bool {
	t.Helper()
	c, ok, err := e.st.Get(context.Background(), f.ws, f.id)
	if err != nil || !ok || c.Request == nil {
		t.Fatalf("call %s not in the records: ok=%v err=%v", f.id, ok, err)
	}
	return c.Request.Local
}

// A read after the recorder has written the calls waits for nothing more
// and ingest writes none of them.
func TestOwnWritesSettledByRecorder(t *testing.T) {
	e := newOwnEnv(t, time.Hour, time.Hour)
	a, b, c := demoCall(1, t0), demoCall(2, t0), demoCall(3, t0)
	e.accept(t, a, 0, 10)
	e.accept(t, b, 0, 11)
	e.accept(t, c, 1, 5)
	e.record(t, a, 0, 10, callrecords.NoOffset)
	e.record(t, b, 0, 11, 11)
	e.record(t, c, 1, 5, callrecords.NoOffset)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.own.wait(ctx); err != nil {
		t.Fatalf("the read did not end when the recorder had written every call: %v", err)
	}
	if got := [3]int{e.count(t, "recorder"), e.count(t, "ingest"), e.count(t, "failed")}; got != [3]int{3, 0, 0} {
		t.Fatalf("settled by recorder/ingest/failed = %v, want [3 0 0]", got)
	}
	for _, f := range []fixture{a, b, c} {
		if e.local(t, f) {
			t.Fatalf("call %s is ingest's own write; the recorder's was there", f.id)
		}
	}
}

// The recorder passes over a record it cannot take (a workspace its
// registry does not have yet, say) and still advances its offset: ingest
// finds the request missing and writes it at once, without waiting for
// the read's budget.
func TestOwnWritesPassedOverByRecorder(t *testing.T) {
	e := newOwnEnv(t, time.Hour, time.Hour)
	a := demoCall(1, t0)
	e.accept(t, a, 0, 4)
	ctx := context.Background()
	if err := e.st.Write(ctx, func(w *callrecords.Writer) error {
		return w.Advance(ctx, callrecords.DefaultRecorderGroup, schemas.TopicRequested, 0, callrecords.NoOffset, 5)
	}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := e.own.wait(wctx); err != nil {
		t.Fatalf("the read did not end: %v", err)
	}
	if !e.local(t, a) {
		t.Fatal("the call the recorder passed over is not ingest's own write")
	}
	if e.count(t, "ingest") != 1 || e.count(t, "recorder") != 0 {
		t.Fatalf("settled by ingest %d, recorder %d; want 1, 0", e.count(t, "ingest"), e.count(t, "recorder"))
	}
}

// With no recorder, a read waits its budget and then ingest writes what
// the read needs (marked local), and only that: a request noted after the
// read began is not forced.
func TestOwnWritesReadBudget(t *testing.T) {
	e := newOwnEnv(t, 50*time.Millisecond, time.Hour)
	a := demoCall(1, t0)
	e.accept(t, a, 2, 7)
	start := time.Now()
	if err := e.own.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Fatalf("the read waited %v, less than its budget for the recorder", waited)
	}
	if !e.local(t, a) {
		t.Fatal("the call ingest wrote is not marked local (the recorder's read must replace it)")
	}
	if e.count(t, "ingest") != 1 || e.count(t, "recorder") != 0 {
		t.Fatalf("settled by ingest %d, recorder %d; want 1, 0", e.count(t, "ingest"), e.count(t, "recorder"))
	}
	// The recorder's read of the same record replaces ingest's row.
	e.record(t, a, 2, 7, callrecords.NoOffset)
	if e.local(t, a) {
		t.Fatal("the recorder's write of the same record did not replace ingest's own")
	}
}

// Part recorded, part not: the read's fallback writes only what the
// recorder has not.
func TestOwnWritesPartlyRecorded(t *testing.T) {
	e := newOwnEnv(t, 50*time.Millisecond, time.Hour)
	a, b := demoCall(1, t0), demoCall(2, t0)
	e.accept(t, a, 0, 3)
	e.accept(t, b, 1, 3)
	e.record(t, a, 0, 3, callrecords.NoOffset)
	if err := e.own.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e.count(t, "recorder") != 1 || e.count(t, "ingest") != 1 {
		t.Fatalf("settled by recorder %d, ingest %d; want 1, 1", e.count(t, "recorder"), e.count(t, "ingest"))
	}
	if e.local(t, a) || !e.local(t, b) {
		t.Fatalf("local: a %v (recorder's) b %v (ingest's)", e.local(t, a), e.local(t, b))
	}
}

// With no recorder and no read, ingest writes a request once it has been
// pending the fallback time, so the records never miss it for long.
func TestOwnWritesFallback(t *testing.T) {
	e := newOwnEnv(t, time.Hour, 100*time.Millisecond)
	a := demoCall(1, t0)
	e.accept(t, a, 0, 1)
	testutil.Eventually(t, 10*time.Second, "the fallback write of a request pending 100ms", func() bool { return e.count(t, "ingest") > 0 })
	if !e.local(t, a) {
		t.Fatal("the fallback row is not marked local")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := e.own.wait(ctx); err != nil {
		t.Fatalf("a read after the fallback write still waited: %v", err)
	}
}

// A read whose context ends while it waits returns the context's error
// (the route answers 503), and the request is still settled afterwards.
func TestOwnWritesReadCanceled(t *testing.T) {
	e := newOwnEnv(t, time.Hour, time.Hour)
	a := demoCall(1, t0)
	e.accept(t, a, 0, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := e.own.wait(ctx); err == nil {
		t.Fatal("the read returned nil before the call was settled")
	}
	e.record(t, a, 0, 1, callrecords.NoOffset)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if err := e.own.wait(ctx2); err != nil {
		t.Fatalf("after the recorder wrote it: %v", err)
	}
	if e.count(t, "recorder") != 1 {
		t.Fatalf("settled by recorder %d, want 1", e.count(t, "recorder"))
	}
}
