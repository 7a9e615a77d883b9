package kafkax

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/schemas"
)

// A record acked by the embedded broker survives a broker restart on the same
// data directory, and topics keep their partition counts.
func TestBrokerRestartKeepsRecords(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	b, err := StartBroker(BrokerConfig{Listen: "127.0.0.1:0", DataDir: dir, SyncWrites: true})
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	cfg := Config{Brokers: []string{addr}, ClientID: "test", Partitions: 3}
	opts, _ := cfg.ClientOpts()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := EnsureTopics(ctx, cl, -1, CallTopics(3)...); err != nil {
		t.Fatal(err)
	}
	// Idempotent: a second run changes nothing and does not fail.
	if err := EnsureTopics(ctx, cl, -1, CallTopics(3)...); err != nil {
		t.Fatal(err)
	}
	if err := EnsureTopics(ctx, cl, -1, CallTopics(4)...); err == nil {
		t.Fatal("partition count mismatch was not reported")
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: schemas.TopicEvents, Key: []byte("k"), Value: []byte("v1")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	b.Close()

	_, port, _ := splitPort(addr)
	b2, err := StartBroker(BrokerConfig{Listen: "127.0.0.1:" + port, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	cl2, err := kgo.NewClient(kgo.SeedBrokers(b2.Addr()), kgo.ConsumeTopics(schemas.TopicEvents), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	fs := cl2.PollFetches(ctx)
	if errs := fs.Errors(); len(errs) > 0 {
		t.Fatal(errs)
	}
	recs := fs.Records()
	if len(recs) != 1 || string(recs[0].Value) != "v1" {
		t.Fatalf("after restart got %d records", len(recs))
	}
	if err := EnsureTopics(ctx, cl2, -1, CallTopics(3)...); err != nil {
		t.Fatalf("topics lost on restart: %v", err)
	}
}
