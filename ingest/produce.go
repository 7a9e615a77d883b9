package ingest

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
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
