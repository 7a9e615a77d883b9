package dialer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

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
			if o := d.owners[ftp.Partition]; o != nil && len(ftp.Records) > 0 {
				o.push(ftp.Records)
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

// requestSeek asks the poll loop to rewind a partition (see
// partitionOwner.maybeEndOverflow).
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
		if _, ok := d.owners[p]; ok {
			continue
		}
		o := newPartitionOwner(d, p)
		d.owners[p] = o
		go o.run()
	}
	n := len(d.owners)
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
	d.stopOwners(parts)
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
	d.stopOwners(parts)
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
	n := len(d.owners)
	d.mu.Unlock()
	d.adm.setOwned(n)
	d.m.partitionsOwned.Set(float64(n))
}

func (d *dialer) stopOwners(parts []int32) {
	var stopping []*partitionOwner
	d.mu.Lock()
	for _, p := range parts {
		if o := d.owners[p]; o != nil {
			stopping = append(stopping, o)
			delete(d.owners, p)
		}
		delete(d.seeks, p)
	}
	d.mu.Unlock()
	var wg sync.WaitGroup
	for _, o := range stopping {
		wg.Add(1)
		go func() { defer wg.Done(); o.stop() }()
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
	for p, o := range d.owners {
		if !o.loaded.Load() {
			return fmt.Errorf("loading the call states of partition %d", p)
		}
	}
	return nil
}
