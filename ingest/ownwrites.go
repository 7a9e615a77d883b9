package ingest

import (
	"context"
	"sync"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/schemas"
)

// ownWrites writes this replica's acknowledged requests into the call
// records for read-your-writes, by group commit: requests that arrive
// while a transaction is being written wait for the next one, which takes
// all of them. One transaction per request capped POST /v1/api/call at
// what the database commits per second (on SQLite, one writer at a time);
// a batch costs about one commit however many calls it holds. The price is
// that a failing write fails its whole batch: each call of it is still
// accepted (it is in Kafka) and reaches the records through the recorder.
//
// A goroutine drains the queue only while there is work, so a handler
// needs no Close.
type ownWrites struct {
	st    *callrecords.Store
	mu    sync.Mutex
	queue []*ownWrite
	busy  bool
}

type ownWrite struct {
	req       *schemas.CallRequested
	data      []byte
	partition int32
	offset    int64
	done      chan error // buffered: the drainer never waits for a caller gone
}

// put queues one request and waits for the transaction that writes it, or
// for ctx.
func (o *ownWrites) put(ctx context.Context, req *schemas.CallRequested, data []byte, partition int32, offset int64) error {
	w := &ownWrite{req: req, data: data, partition: partition, offset: offset, done: make(chan error, 1)}
	o.mu.Lock()
	o.queue = append(o.queue, w)
	start := !o.busy
	o.busy = true
	o.mu.Unlock()
	if start {
		go o.drain()
	}
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drain writes what is queued, one transaction per round, until nothing is.
func (o *ownWrites) drain() {
	for {
		o.mu.Lock()
		batch := o.queue
		o.queue = nil
		if len(batch) == 0 {
			o.busy = false
			o.mu.Unlock()
			return
		}
		o.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), recordsTimeout)
		err := o.st.Write(ctx, func(w *callrecords.Writer) error {
			for _, b := range batch {
				if _, err := w.PutRequest(ctx, b.req, b.data, b.partition, b.offset, true); err != nil {
					return err
				}
			}
			return nil
		})
		cancel()
		for _, b := range batch {
			b.done <- err
		}
	}
}
