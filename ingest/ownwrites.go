package ingest

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/schemas"
)

// ownWrites writes this replica's acknowledged requests into the call
// records for read-your-writes, by group commit: requests that arrive
// while a transaction is being written go into the next one, which takes
// all of them.
//
// POST /v1/api/call does not wait for that write: its 202 means the call
// is durable in Kafka, which is all a 2xx promises, and waiting for the
// database too cut the route's throughput about fourfold. The reads wait
// instead: a read of the call records (get, list, export, deliveries, and
// the reads of cancel, redeliver and the agent's reports) first waits for
// every request this replica acknowledged before it to be written. So a
// client that got its 202 and then asks this replica sees its call, as it
// did when POST waited, and a read with no write before it waits for
// nothing.
//
// Weighed and not taken: an in-memory copy of the pending calls that reads
// fall back to. It would answer a little sooner, but every route would then
// render calls from two sources, and a cancel of a call not yet in the
// database would have nothing to attach to.
//
// The writer lingers (ownLinger) before a transaction of fewer than
// ownBatch calls, unless a read is waiting: a row costs SQLite about half
// as much in a transaction of hundreds as in one of a few dozen, which is
// what a busy replica formed without the linger, and the linger cannot
// slow a read down, since a waiting read cuts it short.
//
// A write that fails fails its batch: those calls are still accepted (they
// are in Kafka) and reach the records through the recorder; a read waiting
// on them goes on and reads what the database has. The queue is bounded
// (maxOwnQueue): past it POST waits for room, which is the backpressure a
// database slower than Kafka needs.
type ownWrites struct {
	st  *callrecords.Store
	log *slog.Logger

	mu    sync.Mutex
	queue []*ownWrite
	busy  bool
	// enqueued is the sequence number of the last write queued, written
	// that of the last one whose transaction ended (committed or failed);
	// changed is closed and replaced whenever written moves.
	enqueued, written uint64
	changed           chan struct{}
	// waiting counts the reads waiting for a write; kick (buffered) wakes
	// a lingering writer when one arrives or the batch is full.
	waiting int
	kick    chan struct{}
}

const (
	// maxOwnQueue bounds the requests waiting for their own write.
	maxOwnQueue = 20_000
	// ownBatch is the transaction size the writer lingers for, ownLinger
	// how long at most.
	ownBatch  = 256
	ownLinger = 5 * time.Millisecond
)

type ownWrite struct {
	req       *schemas.CallRequested
	data      []byte
	partition int32
	offset    int64
	seq       uint64
}

func newOwnWrites(st *callrecords.Store, log *slog.Logger) *ownWrites {
	return &ownWrites{st: st, log: log, changed: make(chan struct{}), kick: make(chan struct{}, 1)}
}

// put queues one acknowledged request for the next group commit. It waits
// only while the queue is full, or until ctx ends (then the request reaches
// the records through the recorder alone).
func (o *ownWrites) put(ctx context.Context, req *schemas.CallRequested, data []byte, partition int32, offset int64) error {
	o.mu.Lock()
	if err := o.until(ctx, func() bool { return len(o.queue) < maxOwnQueue }); err != nil {
		return err
	}
	o.enqueued++
	o.queue = append(o.queue, &ownWrite{req: req, data: data, partition: partition, offset: offset, seq: o.enqueued})
	start := !o.busy
	o.busy = true
	if len(o.queue) >= ownBatch {
		o.wake()
	}
	o.mu.Unlock()
	if start {
		go o.drain()
	}
	return nil
}

// wake cuts a linger short.
func (o *ownWrites) wake() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// wait returns once every request queued before the call is written (or
// its write failed), or when ctx ends.
func (o *ownWrites) wait(ctx context.Context) error {
	o.mu.Lock()
	target := o.enqueued
	if o.written >= target {
		o.mu.Unlock()
		return nil
	}
	o.waiting++
	o.wake()
	err := o.until(ctx, func() bool { return o.written >= target })
	if err != nil {
		o.mu.Lock()
	}
	o.waiting--
	o.mu.Unlock()
	return err
}

// until waits, with o.mu held on entry, until cond holds (checked under
// o.mu each time written moves), and returns with o.mu still held; if ctx
// ends first it returns ctx's error with o.mu released.
func (o *ownWrites) until(ctx context.Context, cond func() bool) error {
	for !cond() {
		ch := o.changed
		o.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		o.mu.Lock()
	}
	return nil
}

// drain writes what is queued, one transaction per round, until nothing is.
func (o *ownWrites) drain() {
	for {
		o.mu.Lock()
		if len(o.queue) > 0 && len(o.queue) < ownBatch && o.waiting == 0 {
			o.mu.Unlock()
			t := time.NewTimer(ownLinger)
			select {
			case <-t.C:
			case <-o.kick:
			}
			t.Stop()
			o.mu.Lock()
		}
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
		if err != nil {
			o.log.Warn("calls written to Kafka but not to the call records yet; the recorder adds them", "calls", len(batch), "error", err.Error())
		}
		o.mu.Lock()
		o.written = batch[len(batch)-1].seq
		close(o.changed)
		o.changed = make(chan struct{})
		o.mu.Unlock()
	}
}
