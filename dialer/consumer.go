package dialer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/backoff"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/schemas"
)

// pollTimeout bounds one poll so that seeks requested by partition owners
// are applied promptly even when no records arrive.
const pollTimeout = 250 * time.Millisecond

// poll hands fetched records to their partition's owner until ctx ends. It
// never processes a record itself, so one slow partition does not hold the
// others; an owner whose inbox grows pauses its own partition.
func (d *dialer) poll(ctx context.Context) {
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, pollTimeout)
		fs := d.cons.PollRecords(pctx, 5000)
		cancel()
		if fs.IsClientClosed() {
			return
		}
		fs.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			d.log.Warn("dialer: fetch error", "topic", t, "partition", p, "err", err)
		})
		d.mu.Lock()
		fs.EachPartition(func(ftp kgo.FetchTopicPartition) {
			if w := d.workers[ftp.Partition]; w != nil && len(ftp.Records) > 0 {
				w.push(ftp.Records)
			}
		})
		seeks := d.seeks
		d.seeks = nil
		d.mu.Unlock()
		if len(seeks) > 0 {
			// Seeks happen here, between poll and AllowRebalance, so no
			// revoke runs concurrently (kgo's advice for SetOffsets).
			set := map[int32]kgo.EpochOffset{}
			for p, off := range seeks {
				set[p] = kgo.EpochOffset{Epoch: -1, Offset: off}
			}
			d.cons.SetOffsets(map[string]map[int32]kgo.EpochOffset{schemas.TopicRequested: set})
		}
		d.cons.AllowRebalance()
	}
}

// requestSeek asks the poll loop to rewind a partition (see partition.overflow).
func (d *dialer) requestSeek(p int32, offset int64) {
	d.mu.Lock()
	if d.seeks == nil {
		d.seeks = map[int32]int64{}
	}
	d.seeks[p] = offset
	d.mu.Unlock()
}

func (d *dialer) pause(p int32) {
	d.cons.PauseFetchPartitions(map[string][]int32{schemas.TopicRequested: {p}})
}

func (d *dialer) resume(p int32) {
	d.cons.ResumeFetchPartitions(map[string][]int32{schemas.TopicRequested: {p}})
}

func (d *dialer) assigned(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	d.mu.Lock()
	for _, p := range m[schemas.TopicRequested] {
		if _, ok := d.workers[p]; ok {
			continue
		}
		w := newPartition(d, p)
		d.workers[p] = w
		go w.run()
	}
	n := len(d.workers)
	d.mu.Unlock()
	d.joined.Store(true)
	d.adm.setOwned(n)
	d.m.partitionsOwned.Set(float64(n))
	if len(m[schemas.TopicRequested]) > 0 {
		d.log.Info("dialer: partitions assigned", "partitions", m[schemas.TopicRequested])
	}
}

// revoked stops the owners of the partitions leaving this process (each
// finishes the batch it is writing) and commits what they finished. The
// next owner starts only after this returns, from these offsets and from
// the states written so far.
func (d *dialer) revoked(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	parts := m[schemas.TopicRequested]
	d.stopWorkers(parts)
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		d.log.Warn("dialer: commit on revoke failed", "err", err)
	}
	d.dropped(parts)
	if len(parts) > 0 {
		d.log.Info("dialer: partitions revoked", "partitions", parts)
	}
}

// lost is revoked without the commit: the group has already moved on.
func (d *dialer) lost(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	parts := m[schemas.TopicRequested]
	d.stopWorkers(parts)
	d.dropped(parts)
	if len(parts) > 0 {
		d.log.Warn("dialer: partitions lost", "partitions", parts)
	}
}

func (d *dialer) dropped(parts []int32) {
	for _, p := range parts {
		d.adm.dropPartition(p)
	}
	d.mu.Lock()
	n := len(d.workers)
	d.mu.Unlock()
	d.adm.setOwned(n)
	d.m.partitionsOwned.Set(float64(n))
}

func (d *dialer) stopWorkers(parts []int32) {
	var ws []*partition
	d.mu.Lock()
	for _, p := range parts {
		if w := d.workers[p]; w != nil {
			ws = append(ws, w)
			delete(d.workers, p)
		}
		delete(d.seeks, p)
	}
	d.mu.Unlock()
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() { defer wg.Done(); w.stop() }()
	}
	wg.Wait()
}

// The dialer is ready (GET /readyz) once it has joined the group and loaded
// the call states of every partition it owns, that is, once it applies the
// commands of all its partitions.

// inGroup is the readiness check that the group has assigned this process
// its partitions (none is an answer too).
func (d *dialer) inGroup(context.Context) error {
	if !d.joined.Load() {
		return fmt.Errorf("joining consumer group %s", d.cfg.Group)
	}
	return nil
}

// statesLoaded is the readiness check that every owned partition's call
// states are loaded.
func (d *dialer) statesLoaded(context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for p, o := range d.workers {
		if !o.loaded.Load() {
			return fmt.Errorf("loading the call states of partition %d", p)
		}
	}
	return nil
}

// writeAdmit writes an admission decision to the call's partition. The
// partition's owner makes the call dialing when it applies it.
func (d *dialer) writeAdmit(t admitTicket) {
	rec, err := commandRecord(TypeDecision, t.CallID, t.Partition, t.At, decision{
		CallID: t.CallID, WorkspaceID: t.WorkspaceID, Decision: decideAdmit, DecidedAt: t.At.UTC(),
	})
	tctx := obs.ContextWithTraceParent(context.Background(), t.TraceParent, t.TraceState)
	if err != nil {
		d.log.ErrorContext(tctx, "dialer: encode admit", "call_id", t.CallID, "workspace_id", t.WorkspaceID, "err", err)
		d.adm.failed(t)
		return
	}
	rec.Context = tctx
	d.prod.Produce(d.prodCtx, rec, func(_ *kgo.Record, err error) {
		if err != nil {
			d.log.WarnContext(tctx, "dialer: write admit failed; call stays queued", "call_id", t.CallID, "workspace_id", t.WorkspaceID, "err", err)
			d.adm.failed(t)
		}
	})
}

// writeCommand writes one of the dialer's commands about st's call,
// retrying until it is acknowledged or ctx ends.
func (d *dialer) writeCommand(ctx context.Context, rec *kgo.Record, st *callState) error {
	wait := backoff.Doubling{Next: 100 * time.Millisecond, Max: 5 * time.Second}
	for {
		err := d.prod.ProduceSync(ctx, rec).FirstErr()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || errors.Is(err, kgo.ErrClientClosed) {
			return err
		}
		d.log.WarnContext(ctxOf(rec), "dialer: write command failed; retrying", "call_id", st.CallID, "workspace_id", st.WorkspaceID,
			"type", kafkax.Header(rec, schemas.HeaderType), "err", err)
		if !wait.Wait(ctx) {
			return ctx.Err()
		}
	}
}
