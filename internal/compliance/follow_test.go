package compliance

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

type testKafka struct {
	b  *kafkax.Broker
	cl *kgo.Client // producer
}

func startKafka(t testing.TB, topics ...string) *testKafka {
	t.Helper()
	b, err := kafkax.StartBroker(kafkax.BrokerConfig{Listen: "127.0.0.1:0", Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if len(topics) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := kafkax.CreateTopics(ctx, cl, kafkax.TopicsConfig{Partitions: 3, ReplicationFactor: 1}, topics...); err != nil {
			t.Fatal(err)
		}
	}
	return &testKafka{b: b, cl: cl}
}

func (k *testKafka) produce(t testing.TB, rs ...*kgo.Record) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := k.cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return rs
}

func suppress(t *testing.T, ws, number string, reason schemas.SuppressionReason) *kgo.Record {
	t.Helper()
	r, err := SuppressionRecord(schemas.Suppression{WorkspaceID: ws, Number: number, Reason: reason, Source: schemas.SourceAPI,
		AddedAt: time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)}, "/test")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func runFollower(t *testing.T, f *Follower) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// The list is loaded from the compacted topic (a tombstone removes), the
// table refuses to answer until it has read to the end offsets of its start,
// follows what is written later, and keeps each workspace's list its own.
func TestSuppressionTableFollowsTopic(t *testing.T) {
	k := startKafka(t, schemas.TopicSuppressions)
	var rs []*kgo.Record
	for i := range 300 {
		rs = append(rs, suppress(t, "ws_a", fmt.Sprintf("+1212555%04d", i), schemas.ReasonOptOut))
	}
	rs = append(rs, suppress(t, "ws_b", "+12125550007", schemas.ReasonComplaint))
	rs = append(rs, RemovalRecord("ws_a", "+12125550007"), RemovalRecord("ws_a", "+12125550299"))
	rs = append(rs, suppress(t, "ws_a", "+12125550299", schemas.ReasonManual)) // listed again after removal
	k.produce(t, rs...)

	// Fetches are held: the follower lists offsets but cannot read.
	release := make(chan struct{})
	k.b.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		k.b.KeepControl()
		k.b.SleepControl(func() { <-release })
		k.b.DropControl()
		return nil, nil, false
	})
	table := NewTable()
	f, err := FollowSuppressions([]kgo.Opt{kgo.SeedBrokers(k.b.Addr())}, table, nil)
	if err != nil {
		t.Fatal(err)
	}
	runFollower(t, f)
	testutil.Consistently(t, time.Second, "the table stays not ready while it cannot read", func() bool {
		_, _, err := table.Lookup("ws_a", "+12125550001")
		return errors.Is(err, ErrNotReady) && !f.CaughtUp()
	})
	close(release)
	testutil.Eventually(t, 10*time.Second, "caught up", f.CaughtUp)

	lookup := func(ws, number string) (Entry, bool) {
		t.Helper()
		e, ok, err := table.Lookup(ws, number)
		if err != nil {
			t.Fatal(err)
		}
		return e, ok
	}
	if e, ok := lookup("ws_a", "+12125550001"); !ok || e.Reason != schemas.ReasonOptOut || !e.AddedAt.Equal(time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("listed number: %+v %v", e, ok)
	}
	if _, ok := lookup("ws_a", "+12125550007"); ok {
		t.Fatal("a tombstone did not remove the number")
	}
	if e, ok := lookup("ws_a", "+12125550299"); !ok || e.Reason != schemas.ReasonManual {
		t.Fatalf("re-listed number: %+v %v", e, ok)
	}
	if e, ok := lookup("ws_b", "+12125550007"); !ok || e.Reason != schemas.ReasonComplaint {
		t.Fatalf("ws_b's entry: %+v %v", e, ok)
	}
	if _, ok := lookup("ws_b", "+12125550001"); ok {
		t.Fatal("ws_a's entry visible to ws_b")
	}
	if table.Len() != 300 { // 300 for ws_a, one removed, one for ws_b
		t.Fatalf("%d entries", table.Len())
	}

	// A write after start: WaitApplied is read-your-write.
	r := k.produce(t, suppress(t, "ws_a", "+13105550123", schemas.ReasonOptOut))[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.WaitApplied(ctx, r.Partition, r.Offset); err != nil {
		t.Fatal(err)
	}
	if _, ok := lookup("ws_a", "+13105550123"); !ok {
		t.Fatal("not listed after WaitApplied")
	}
	r = k.produce(t, RemovalRecord("ws_a", "+13105550123"))[0]
	if err := f.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := lookup("ws_a", "+13105550123"); ok {
		t.Fatal("still listed after the removal and a barrier")
	}

	// A record nobody valid wrote is skipped and counted, not fatal.
	k.produce(t, &kgo.Record{Topic: schemas.TopicSuppressions, Key: []byte("ws_a +12125550001"), Value: []byte(`{"reason":"nope"}`)})
	if err := f.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	if f.Invalid() != 1 {
		t.Fatalf("%d invalid records counted", f.Invalid())
	}
	if _, ok := lookup("ws_a", "+12125550001"); !ok {
		t.Fatal("an invalid record changed the list")
	}
}

// A follower started before its topic exists waits, not ready, and catches
// up once the topic appears (an empty topic is caught up at once).
func TestFollowerWaitsForTopic(t *testing.T) {
	k := startKafka(t)
	table := NewTable()
	f, err := FollowSuppressions([]kgo.Opt{kgo.SeedBrokers(k.b.Addr()), kgo.MetadataMinAge(100 * time.Millisecond)}, table, nil)
	if err != nil {
		t.Fatal(err)
	}
	runFollower(t, f)
	testutil.Consistently(t, 500*time.Millisecond, "not ready without a topic", func() bool { return !table.Ready() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := kafkax.CreateTopics(ctx, k.cl, kafkax.TopicsConfig{Partitions: 3, ReplicationFactor: 1}, schemas.TopicSuppressions); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "ready once the topic exists", table.Ready)
}

// Dialing events written by any dialer become attempts; a dialing that
// ended with a compliance outcome does not count; other events are ignored.
func TestAttemptsFollowEvents(t *testing.T) {
	k := startKafka(t, schemas.TopicEvents)
	now := time.Now().UTC().Truncate(time.Second)
	event := func(callID string, status schemas.Status, outcome schemas.Outcome, at time.Time) *kgo.Record {
		ev := schemas.CallEvent{CallID: callID, WorkspaceID: "ws_a", Sequence: 2, Status: status, OccurredAt: at, To: "+12125550123"}
		if status == schemas.StatusEnded {
			ev.Outcome, ev.EndedBy = outcome, schemas.EndedByDialer
		}
		r, err := schemas.NewRecord(schemas.TopicEvents, callID, schemas.Meta{Type: status.Type(), Source: "/test", Subject: callID}, ev)
		if err != nil && status != schemas.StatusEnded {
			t.Fatal(err)
		}
		if err != nil { // the compliance outcomes are not in the schema yet: write the JSON as a dialer would
			r = &kgo.Record{Topic: schemas.TopicEvents, Key: []byte(callID), Value: []byte(fmt.Sprintf(
				`{"call_id":%q,"workspace_id":"ws_a","sequence":3,"status":"ended","occurred_at":%q,"to":"+12125550123","outcome":%q}`,
				callID, at.Format(time.RFC3339), outcome)),
				Headers: []kgo.RecordHeader{{Key: schemas.HeaderType, Value: []byte(schemas.TypeCallEnded)}}}
		}
		return r
	}
	const c1, c2, c3 = "aaaaaaaaaaaaaaaaaaaaaaa1", "aaaaaaaaaaaaaaaaaaaaaaa2", "aaaaaaaaaaaaaaaaaaaaaaa3"
	k.produce(t,
		event(c1, schemas.StatusQueued, "", now.Add(-time.Hour)),
		event(c1, schemas.StatusDialing, "", now.Add(-time.Hour)),
		event(c1, schemas.StatusEnded, schemas.OutcomeCompleted, now.Add(-time.Hour)),
		event(c2, schemas.StatusDialing, "", now.Add(-30*time.Minute)),
		event(c3, schemas.StatusDialing, "", now.Add(-10*time.Minute)),
		event(c3, schemas.StatusEnded, schemas.Outcome(OutcomeOutsideCallingHours), now.Add(-10*time.Minute)),
	)
	a := NewAttempts()
	f, err := FollowAttempts([]kgo.Opt{kgo.SeedBrokers(k.b.Addr())}, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	runFollower(t, f)
	testutil.Eventually(t, 10*time.Second, "attempt history loaded", a.Ready)
	caps := Caps{PerDay: 2, PerWeek: 7}
	if ok, _ := a.Allowed("ws_a", "+12125550123", now, Caps{PerDay: 3, PerWeek: 7}); !ok {
		t.Fatal("a refused dialing counted as an attempt")
	}
	if ok, next := a.Allowed("ws_a", "+12125550123", now, caps); ok || !next.Equal(now.Add(23*time.Hour)) {
		t.Fatalf("two attempts, cap 2: %v, next %s", ok, next)
	}
	if f.Invalid() != 0 {
		t.Fatalf("%d invalid", f.Invalid())
	}
}

// How long a new suppression takes to reach a follower's table: the
// producer's round trip (acks=all) plus the follower's fetch, on the
// embedded broker over loopback; a cluster adds its replication.
func BenchmarkSuppressionPropagation(b *testing.B) {
	k := startKafka(b, schemas.TopicSuppressions)
	table := NewTable()
	f, err := FollowSuppressions([]kgo.Opt{kgo.SeedBrokers(k.b.Addr())}, table, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(ctx) }()
	defer func() { cancel(); <-done }()
	testutil.Eventually(b, 10*time.Second, "caught up", table.Ready)
	i := 0
	for b.Loop() {
		i++
		number := suppressedNumber(i)
		r, _ := SuppressionRecord(schemas.Suppression{WorkspaceID: "ws_a", Number: number, Reason: schemas.ReasonOptOut,
			Source: schemas.SourceAPI, AddedAt: time.Now()}, "/bench")
		if err := k.cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			b.Fatal(err)
		}
		if err := f.WaitApplied(ctx, r.Partition, r.Offset); err != nil {
			b.Fatal(err)
		}
	}
}
