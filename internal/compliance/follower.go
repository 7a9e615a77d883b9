package compliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// FollowerConfig configures a Follower.
type FollowerConfig struct {
	// Topic is read whole: every partition, no consumer group, so every
	// process holds everything.
	Topic string
	// Since is how far back a start reads: 0 reads from the start of the
	// topic (the suppression list), a week reads the attempt history.
	Since time.Duration
	// Apply folds one record in. A record it returns an error for is
	// counted, logged and skipped: one unreadable record must not stop
	// every dial, and only ingest and the dialer write these topics, after
	// validating what they write.
	Apply func(*kgo.Record) error
	// CaughtUp is called once, when every partition has been read up to
	// the end offset it had at start (for example Table.SetReady).
	CaughtUp func()
	Logger   *slog.Logger
}

// Follower reads one topic into memory and says when it has caught up. It
// gives two waits on top: WaitApplied (read your own write: ingest waits
// for its suppression to be in its table before it answers) and Barrier
// (everything written before now is applied: what bounds the race on
// attempt caps, see doc.go).
//
// "Caught up" is the offset of the last record read reaching the end offset
// measured at start. No gap can sit at a partition's end on these topics:
// they are written without transactions (no trailing control record), and
// compaction never cleans the active segment, which holds the newest
// record. Should a partition ever stay short of its end, the follower stays
// not caught up, fails closed, and says which partition in the log.
type Follower struct {
	cfg   FollowerConfig
	cl    *kgo.Client
	adm   *kadm.Client
	log   *slog.Logger
	start time.Time

	mu       sync.Mutex
	pos      map[int32]int64 // next offset to apply, per partition
	target   map[int32]int64 // end offsets at start; a partition leaves when reached
	started  bool
	progress chan struct{} // closed and replaced whenever pos moves

	caughtUp atomic.Bool
	invalid  atomic.Int64
}

// NewFollower builds the follower and its own Kafka client from opts (the
// service's kafkax.Config.ClientOpts, plus any hooks). Run it, then read
// CaughtUp.
func NewFollower(opts []kgo.Opt, cfg FollowerConfig) (*Follower, error) {
	if cfg.Topic == "" || cfg.Apply == nil {
		return nil, errors.New("compliance: follower needs a topic and an Apply function")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cl, err := kgo.NewClient(append(opts[:len(opts):len(opts)], kgo.FetchMaxWait(500*time.Millisecond))...)
	if err != nil {
		return nil, fmt.Errorf("compliance: follower for %s: %w", cfg.Topic, err)
	}
	return &Follower{
		cfg: cfg, cl: cl, adm: kadm.NewClient(cl), log: cfg.Logger.With("topic", cfg.Topic),
		pos: map[int32]int64{}, target: map[int32]int64{}, progress: make(chan struct{}),
	}, nil
}

// CaughtUp reports whether everything the topic held at start is applied.
func (f *Follower) CaughtUp() bool { return f.caughtUp.Load() }

// Invalid returns how many records Apply refused.
func (f *Follower) Invalid() int64 { return f.invalid.Load() }

// Run reads the topic until ctx ends, then closes the client. It waits for
// the topic to exist, retrying every second.
func (f *Follower) Run(ctx context.Context) error {
	defer f.cl.Close()
	f.start = time.Now()
	offsets, err := f.startOffsets(ctx)
	if err != nil {
		return nil // ctx ended
	}
	f.cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{f.cfg.Topic: offsets})
	f.checkCaughtUp()
	var lastWarn time.Time
	for {
		fs := f.cl.PollRecords(ctx, 1000)
		if ctx.Err() != nil {
			return nil
		}
		errs := 0
		fs.EachError(func(_ string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
				return
			}
			errs++
			if time.Since(lastWarn) > 30*time.Second {
				lastWarn = time.Now()
				f.log.Warn("compliance: fetch error; retrying", "partition", p, "err", err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			if err := f.cfg.Apply(r); err != nil {
				f.invalid.Add(1)
				f.log.Warn("compliance: skipped a record that cannot be applied", "partition", r.Partition, "offset", r.Offset, "err", err)
			}
		})
		if fs.NumRecords() > 0 {
			f.mu.Lock()
			fs.EachPartition(func(p kgo.FetchTopicPartition) {
				if n := len(p.Records); n > 0 {
					f.pos[p.Partition] = p.Records[n-1].Offset + 1
				}
			})
			close(f.progress)
			f.progress = make(chan struct{})
			f.mu.Unlock()
			f.checkCaughtUp()
		}
		if !f.CaughtUp() && time.Since(lastWarn) > 30*time.Second && time.Since(f.start) > 30*time.Second {
			lastWarn = time.Now()
			f.mu.Lock()
			behind := fmt.Sprint(f.target)
			f.mu.Unlock()
			f.log.Warn("compliance: still loading; refusing to decide until caught up", "partitions_behind_end_offsets", behind)
		}
		if errs > 0 && fs.NumRecords() == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// startOffsets lists where each partition starts (the topic's start, or the
// first offset at or after Since ago) and ends, retrying until the topic
// exists or ctx ends.
func (f *Follower) startOffsets(ctx context.Context) (map[int32]kgo.Offset, error) {
	warned := false
	for {
		offsets, err := f.listOffsets(ctx)
		if err == nil {
			return offsets, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !warned {
			f.log.Warn("compliance: cannot list the topic yet; retrying every second", "err", err)
			warned = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (f *Follower) listOffsets(ctx context.Context) (map[int32]kgo.Offset, error) {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ends, err := f.adm.ListEndOffsets(lctx, f.cfg.Topic)
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	var starts kadm.ListedOffsets
	if f.cfg.Since > 0 {
		starts, err = f.adm.ListOffsetsAfterMilli(lctx, time.Now().Add(-f.cfg.Since).UnixMilli(), f.cfg.Topic)
	} else {
		starts, err = f.adm.ListStartOffsets(lctx, f.cfg.Topic)
	}
	if err != nil {
		return nil, fmt.Errorf("list start offsets: %w", err)
	}
	if err := errors.Join(ends.Error(), starts.Error()); err != nil {
		return nil, err
	}
	if len(ends[f.cfg.Topic]) == 0 {
		return nil, fmt.Errorf("topic %s does not exist", f.cfg.Topic)
	}
	out := map[int32]kgo.Offset{}
	f.mu.Lock()
	defer f.mu.Unlock()
	starts.Each(func(o kadm.ListedOffset) {
		out[o.Partition] = kgo.NewOffset().At(o.Offset)
		f.pos[o.Partition] = o.Offset
		if e, ok := ends.Lookup(o.Topic, o.Partition); ok && e.Offset > o.Offset {
			f.target[o.Partition] = e.Offset
		}
	})
	f.started = true
	close(f.progress)
	f.progress = make(chan struct{})
	return out, nil
}

func (f *Follower) checkCaughtUp() {
	if f.caughtUp.Load() {
		return
	}
	f.mu.Lock()
	for p, end := range f.target {
		if f.pos[p] >= end {
			delete(f.target, p)
		}
	}
	done := f.started && len(f.target) == 0
	f.mu.Unlock()
	if !done {
		return
	}
	f.caughtUp.Store(true)
	f.log.Info("compliance: caught up", "seconds", time.Since(f.start).Seconds(), "invalid_records", f.invalid.Load())
	if f.cfg.CaughtUp != nil {
		f.cfg.CaughtUp()
	}
}

// WaitApplied waits until the record at offset in partition has been
// applied (read your own write), or ctx ends.
func (f *Follower) WaitApplied(ctx context.Context, partition int32, offset int64) error {
	return f.waitFor(ctx, func() bool { return f.pos[partition] > offset })
}

// Barrier waits until every record written to the topic before the call (up
// to the end offsets it measures now) has been applied, or ctx ends. It
// costs one ListOffsets round trip and, usually, a few milliseconds of
// waiting for the fetch in flight.
func (f *Follower) Barrier(ctx context.Context) error {
	ends, err := f.adm.ListEndOffsets(ctx, f.cfg.Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("compliance: barrier on %s: %w", f.cfg.Topic, err)
	}
	return f.waitFor(ctx, func() bool {
		if !f.started {
			return false
		}
		ok := true
		ends.Each(func(o kadm.ListedOffset) {
			if f.pos[o.Partition] < o.Offset {
				ok = false
			}
		})
		return ok
	})
}

// waitFor waits until cond (called with f.mu held) holds.
func (f *Follower) waitFor(ctx context.Context, cond func() bool) error {
	for {
		f.mu.Lock()
		ok, ch := cond(), f.progress
		f.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("compliance: waiting for %s: %w", f.cfg.Topic, ctx.Err())
		case <-ch:
		}
	}
}
