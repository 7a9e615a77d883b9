package recorder

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/internal/callrecords/dbtest"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

var wantSeqs = []int{1, 2, 3, 4, 5}

// Events in, rows out: every call of a known workspace gets its request,
// its five events once each in sequence order (whatever order the topics
// were read in, replays included) and its delivery attempts; records of
// unknown workspaces, the dialer's own commands and unreadable records
// leave nothing behind and stop nothing.
func TestRecordsEveryCallOnceInOrder(t *testing.T) {
	for _, engine := range dbtest.Engines {
		t.Run(string(engine), func(t *testing.T) {
			b := startBroker(t)
			cl := producer(t, b)
			st := dbtest.Open(t, engine, callrecords.Options{Retention: callrecords.DefaultRetention})
			r := start(t, Config{Store: st, Registry: testRegistry(t), Kafka: kafkaConfig(b), RetentionInterval: time.Hour})

			now := time.Now().UTC().Truncate(time.Millisecond)
			const calls = 40
			var requests []*kgo.Record
			replays := 0
			for i := range calls {
				recs := callRecords(t, callID(i), "ws_a", now.Add(time.Duration(i)*time.Millisecond))
				if i%2 == 0 {
					// Events first, the request later: the call is visible
					// at once, and its place in the list settles on the
					// dialer's requested_at.
					produce(t, cl, recs[1:]...)
					requests = append(requests, recs[0])
				} else {
					produce(t, cl, recs...)
				}
				if i%5 == 0 { // the dialer re-emits an event after a restart
					produce(t, cl, eventRecord(t, callID(i), "ws_a", 3, schemas.StatusRinging, now.Add(time.Duration(i)*time.Millisecond)))
					replays++
				}
			}
			produce(t, cl, requests...)
			produce(t, cl, callRecords(t, callID(999), "ws_unknown", now)...)
			produce(t, cl,
				&kgo.Record{Topic: schemas.TopicEvents, Key: []byte(callID(998)), Value: []byte("{not json"),
					Headers: []kgo.RecordHeader{{Key: "ce_id", Value: []byte("x")}, {Key: "ce_type", Value: []byte(schemas.StatusQueued.Type())}}},
				&kgo.Record{Topic: schemas.TopicRequested, Key: []byte(callID(1)), Value: []byte(`{}`),
					Headers: []kgo.RecordHeader{{Key: "ce_type", Value: []byte("dialstream.dialer.dial_result.v1")}}})

			testutil.EventuallyWhy(t, 30*time.Second, "every call recorded", func() (bool, string) {
				n := count(t, st, `SELECT COUNT(*) FROM call_events`)
				d := count(t, st, `SELECT COUNT(*) FROM webhook_deliveries`)
				q := count(t, st, `SELECT COUNT(*) FROM calls WHERE request IS NOT NULL`)
				return n == calls*5 && d == calls*5 && q == calls, fmt.Sprintf("events %d, deliveries %d, requests %d", n, d, q)
			})
			for i := range calls {
				id := callID(i)
				if got := eventsOf(t, st, "ws_a", id); !slices.Equal(got, wantSeqs) {
					t.Fatalf("call %s events %v, want %v", id, got, wantSeqs)
				}
				c, _, _ := st.Get(context.Background(), "ws_a", id)
				if c.Status != schemas.StatusEnded || c.Outcome != schemas.OutcomeCompleted || c.Key.At != now.Add(time.Duration(i)*time.Millisecond).UnixNano() {
					t.Fatalf("call %s: %s %s key %d", id, c.Status, c.Outcome, c.Key.At)
				}
			}
			if c, ok, _ := st.Get(context.Background(), "ws_unknown", callID(999)); ok {
				t.Fatalf("a call of a workspace not in the registry was recorded: %+v", c)
			}
			if n := count(t, st, `SELECT COUNT(*) FROM calls`); n != calls {
				t.Fatalf("%d call rows, want %d", n, calls)
			}

			testutil.Eventually(t, 10*time.Second, "the metrics to count every record", func() bool {
				return counter(t, r.metrics, "dialstream_recorder_records_total", nil) == float64(calls*11+replays+11+2)
			})
			for _, c := range []struct {
				topic, result string
				want          int
			}{
				{"requested", "written", calls}, {"events", "written", calls * 5}, {"deliveries", "written", calls * 5},
				{"events", "skipped", replays + 5}, {"requested", "skipped", 2}, {"deliveries", "skipped", 5}, {"events", "invalid", 1},
			} {
				if got := counter(t, r.metrics, "dialstream_recorder_records_total", map[string]string{"topic": c.topic, "result": c.result}); got != float64(c.want) {
					t.Errorf("records_total{%s,%s} = %v, want %d", c.topic, c.result, got, c.want)
				}
			}
			testutil.MetricSeries(t, r.metrics, "dialstream_recorder_")
			resp, err := http.Get("http://" + r.addr + "/readyz")
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("readyz: %v %v", resp, err)
			}
			resp.Body.Close()
		})
	}
}

// A restarted recorder reads on from the offsets in the database, not from
// Kafka's: with Kafka's committed offsets rewound to 0, it still writes
// only the records that came after, and skips none.
func TestRestartReadsOnFromTheDatabase(t *testing.T) {
	b := startBroker(t)
	cl := producer(t, b)
	st := dbtest.Open(t, callrecords.SQLite, callrecords.Options{})
	cfg := Config{Store: st, Registry: testRegistry(t), Kafka: kafkaConfig(b), RetentionInterval: time.Hour, GroupID: "g-restart"}
	now := time.Now().UTC()
	r := start(t, cfg)
	for i := range 20 {
		produce(t, cl, callRecords(t, callID(i), "ws_a", now)...)
	}
	testutil.Eventually(t, 30*time.Second, "the first calls recorded", func() bool {
		return count(t, st, `SELECT COUNT(*) FROM call_events`) == 100
	})
	r.stop()

	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(context.Background(), recordedTopics...)
	if err != nil {
		t.Fatal(err)
	}
	rewind := kadm.Offsets{}
	ends.Each(func(o kadm.ListedOffset) { rewind.AddOffset(o.Topic, o.Partition, 0, -1) })
	if _, err := adm.CommitOffsets(context.Background(), "g-restart", rewind); err != nil {
		t.Fatal(err)
	}
	for i := 20; i < 30; i++ {
		produce(t, cl, callRecords(t, callID(i), "ws_a", now)...)
	}
	cfg.Metrics = prometheus.NewRegistry()
	start(t, cfg)
	testutil.Eventually(t, 30*time.Second, "the later calls recorded", func() bool {
		return count(t, st, `SELECT COUNT(*) FROM call_events`) == 150
	})
	testutil.Eventually(t, 10*time.Second, "the metrics", func() bool {
		return counter(t, cfg.Metrics, "dialstream_recorder_records_total", map[string]string{"result": "written"}) == 10*11
	})
	if n := counter(t, cfg.Metrics, "dialstream_recorder_records_total", map[string]string{"result": "skipped"}); n != 0 {
		t.Fatalf("the restarted recorder read %v records again", n)
	}
}

// A member whose stored position moved under it (another member wrote the
// partition) writes nothing of its batch: the batch is rolled back whole,
// and it reads on from the position the database holds.
func TestMovedOffsetDropsTheBatch(t *testing.T) {
	b := startBroker(t)
	cl := producer(t, b)
	st := dbtest.Open(t, callrecords.SQLite, callrecords.Options{})
	r := start(t, Config{Store: st, Registry: testRegistry(t), Kafka: kafkaConfig(b), RetentionInterval: time.Hour, GroupID: "g"})
	now := time.Now().UTC()
	first := callRecords(t, callID(1), "ws_a", now)
	produce(t, cl, first...)
	testutil.Eventually(t, 30*time.Second, "the first call recorded", func() bool { return len(eventsOf(t, st, "ws_a", callID(1))) == 5 })

	// "Another member" records the events partition of call 1 up to far
	// ahead; this member still believes the old position.
	p := first[1].Partition // the events partition of call 1
	if _, err := st.DB().Exec(`UPDATE consumed_offsets SET next_offset = next_offset + 1000 WHERE topic = $1 AND kafka_partition = $2`,
		schemas.TopicEvents, p); err != nil {
		t.Fatal(err)
	}
	produce(t, cl, eventRecord(t, callID(1), "ws_a", 1, schemas.StatusQueued, now)) // same key, same partition
	testutil.Eventually(t, 30*time.Second, "the batch to be refused", func() bool {
		return counter(t, r.metrics, "dialstream_recorder_batch_failures_total", map[string]string{"reason": "offset_moved"}) >= 1
	})
	offs, err := st.Offsets(context.Background(), "g")
	if err != nil {
		t.Fatal(err)
	}
	if got := offs[schemas.TopicEvents][p]; got < 1000 {
		t.Fatalf("the stored offset was overwritten by the fenced member: %d", got)
	}
	resp, err := http.Get("http://" + r.addr + "/readyz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("a fenced batch made the recorder unready: %v %v", resp, err)
	}
	resp.Body.Close()
}

// Retention: the background delete removes the calls requested before
// CALL_RECORDS_RETENTION, with their events and attempts, and leaves the
// newer ones whole.
func TestRetentionDeletesOldCalls(t *testing.T) {
	for _, engine := range dbtest.Engines {
		t.Run(string(engine), func(t *testing.T) {
			b := startBroker(t)
			cl := producer(t, b)
			st := dbtest.Open(t, engine, callrecords.Options{}) // no bound on writes: old calls can be put in
			now := time.Now().UTC()
			ctx := context.Background()
			for i := range 30 {
				at := now.Add(-2 * time.Hour).Add(time.Duration(i) * time.Second)
				err := st.Write(ctx, func(w *callrecords.Writer) error {
					for _, r := range callRecords(t, callID(1000+i), "ws_a", at) {
						if _, err := apply(ctx, w, testRegistry(t), r); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			if n := count(t, st, `SELECT COUNT(*) FROM call_events`); n != 150 {
				t.Fatalf("%d old events put in", n)
			}
			r := start(t, Config{Store: st, Registry: testRegistry(t), Kafka: kafkaConfig(b),
				Retention: time.Hour, RetentionInterval: 50 * time.Millisecond, DeleteBatch: 7})
			for i := range 10 {
				produce(t, cl, callRecords(t, callID(i), "ws_a", now.Add(-59*time.Minute))...)
			}
			testutil.EventuallyWhy(t, 30*time.Second, "old calls gone, new ones recorded", func() (bool, string) {
				old := count(t, st, `SELECT COUNT(*) FROM calls WHERE call_id >= $1`, callID(1000))
				events := count(t, st, `SELECT COUNT(*) FROM call_events`)
				return old == 0 && events == 50, fmt.Sprintf("old calls %d, events %d", old, events)
			})
			for i := range 10 {
				if got := eventsOf(t, st, "ws_a", callID(i)); !slices.Equal(got, wantSeqs) {
					t.Fatalf("new call %d: events %v", i, got)
				}
			}
			if n := count(t, st, `SELECT COUNT(*) FROM webhook_deliveries`); n != 50 {
				t.Fatalf("%d delivery attempts left, want the new calls' 50", n)
			}
			if got := counter(t, r.metrics, "dialstream_recorder_retention_deleted_calls_total", nil); got != 30 {
				t.Fatalf("retention_deleted_calls_total = %v, want 30", got)
			}
			if got := counter(t, r.metrics, "dialstream_recorder_retention_last_success_timestamp_seconds", nil); got < float64(now.Unix()) {
				t.Fatalf("retention_last_success = %v", got)
			}
		})
	}
}
