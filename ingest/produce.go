package ingest

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	"go.opentelemetry.io/otel/trace"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/obs"
)

// Producer writes records to Kafka. *kgo.Client is one; handler tests use a
// fake. The promise must be called exactly once, with r's Partition and
// Offset set when err is nil, and only after the broker acknowledged the
// record with the client's acks setting (acks=all in Run).
type Producer interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
}

// Pinger is implemented by a Producer that can say whether Kafka is
// reachable (*kgo.Client does); /readyz uses it. A Producer without it is
// always ready.
type Pinger interface {
	Ping(ctx context.Context) error
}

var (
	_ Producer = (*kgo.Client)(nil)
	_ Pinger   = (*kgo.Client)(nil)
)

type produceOutcome struct {
	rec *kgo.Record
	err error
}

// produce hands r to p and waits for its acknowledgement for at most the
// produce timeout. The returned channel delivers the final outcome exactly
// once, even when produce itself gave up waiting (timedOut): franz-go cannot
// withdraw a record that is already in a request to the broker, so such a
// record may still be written after the client was told 503. The caller uses
// the late outcome to keep its Idempotency-Key state truthful.
func produce(ctx context.Context, p Producer, r *kgo.Record) (res produceOutcome, timedOut bool, late <-chan produceOutcome) {
	ch := make(chan produceOutcome, 1)
	p.Produce(ctx, r, func(r *kgo.Record, err error) { ch <- produceOutcome{r, err} })
	select {
	case res := <-ch:
		return res, false, nil
	case <-ctx.Done():
		// The client may have failed the record at the same instant.
		select {
		case res := <-ch:
			return res, false, nil
		default:
			return produceOutcome{err: ctx.Err()}, true, ch
		}
	}
}

// kafkaOpts are the client options of ingest's producer: kafkax's (acks=all,
// idempotent, no linger), a delivery timeout, franz-go's client metrics
// (dialstream_ingest_kafka_*) on the process registry when reg is not nil,
// and, when tp is not nil, kotel's produce tracing: every record written
// gets the traceparent of a publish span under the request's span.
func kafkaOpts(k kafkax.Config, reg *prometheus.Registry, tp trace.TracerProvider) ([]kgo.Opt, error) {
	opts, err := k.ClientOpts()
	if err != nil {
		return nil, err
	}
	// A record that cannot be acknowledged in time fails rather than waiting
	// for ever: its client was answered 503 and may retry. franz-go enforces
	// this only where it is safe for the idempotent producer's sequence
	// numbers, i.e. never on a request the broker may still be applying.
	opts = append(opts, kgo.RecordDeliveryTimeout(k.ProduceTimeout))
	// A retriable produce error (leader moved, not enough replicas) waits for
	// a metadata refresh, which franz-go spaces 5s apart by default: longer
	// than a request may wait. Refreshing up to 4 times per produce timeout
	// lets a retry land inside it, at the cost of more metadata requests
	// while the cluster is unhealthy.
	opts = append(opts, kgo.MetadataMinAge(max(100*time.Millisecond, min(time.Second, k.ProduceTimeout/4))))
	if reg != nil {
		opts = append(opts, kgo.WithHooks(kprom.NewMetrics("dialstream_ingest", kprom.Subsystem("kafka"),
			kprom.Registerer(reg), kprom.Gatherer(reg))))
	}
	if tp != nil {
		opts = append(opts, kgo.WithHooks(obs.KafkaProduceTracing(obs.KafkaTracer(tp, k.ClientID, ""))))
	}
	return opts, nil
}
