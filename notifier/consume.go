package notifier

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/backoff"
	"github.com/dialstream/dialstream/internal/kafkax"
)

// The consumer runs one goroutine per record, at most maxInFlight requests at
// once and maxPerHost per callback host, and commits a partition only up to
// its first unfinished record: records finish out of order, marks advance in
// order, so a crash at any point re-reads (and re-delivers) whatever was not
// finished and never skips it. A record is finished when the records its
// attempt leads to (delivery log entry, retry, DLQ) are acknowledged; its
// request slots are freed as soon as the receiver has answered, so the wait
// for the broker never idles a slot.
//
// The requests of one call (one record key) go one at a time, in offset
// order, so a call's events reach its receiver in sequence order unless one
// of them fails and goes through a retry topic (the others do not wait for
// it).
//
// Retry-topic records wait in their partition's buffer until their due time;
// a timer wakes the dispatcher, so waiting blocks neither the poll loop, nor
// other partitions, nor later records that are due earlier. A partition
// whose buffer reaches partitionBuffer records is paused until it drains to
// half, which bounds memory under a flood and keeps a slow receiver's
// backlog from growing without limit.
type consumer struct {
	n           *notifier
	cl          *kgo.Client
	log         *slog.Logger
	maxInFlight int
	maxPerHost  int
	buffer      int
	drain       time.Duration

	mu       sync.Mutex
	parts    map[kafkax.TopicPartition]*partition
	inFlight int
	perHost  map[string]int
	blocked  map[string]map[*partition]struct{} // host at its cap -> partitions with records waiting for it
	starved  bool                               // a record waited for a free global slot
	stopping bool

	kick    chan struct{}
	workCtx context.Context
}

type itemState uint8

const (
	waiting itemState = iota
	running
	done
	abandoned // ctx ended first: never marked
)

type item struct {
	j     *job
	state itemState
}

// partition is the notifier's state of one assigned partition.
type partition struct {
	kafkax.TopicPartition
	items    []*item            // offset order; the head is the first unfinished record
	waiting  map[string][]*item // callback host -> its waiting records, offset order
	busyKeys map[string]struct{}
	paused   bool
	draining bool // being revoked or shut down: dispatch nothing more
	revoked  bool // no longer ours: mark nothing more
	dirty    bool // something changed since the last scan
	nextDue  time.Time
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

func newConsumer(n *notifier, log *slog.Logger, cfg Config, workCtx context.Context) *consumer {
	return &consumer{
		n: n, log: log, maxInFlight: cfg.MaxInFlight, maxPerHost: cfg.MaxInFlightPerHost,
		buffer: cfg.PartitionBuffer, drain: cfg.Timeout + cfg.Kafka.ProduceTimeout + time.Second,
		parts: map[kafkax.TopicPartition]*partition{}, perHost: map[string]int{}, blocked: map[string]map[*partition]struct{}{},
		kick: make(chan struct{}, 1), workCtx: workCtx,
	}
}

func (c *consumer) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// poll reads records until ctx is done. With BlockRebalanceOnPoll, no
// rebalance runs between a poll and AllowRebalance, so every record handed
// to add belongs to a partition we own.
func (c *consumer) poll(ctx context.Context) {
	for {
		fs := c.cl.PollRecords(ctx, c.buffer)
		if fs.IsClientClosed() || ctx.Err() != nil {
			c.cl.AllowRebalance()
			return
		}
		failed := false
		fs.EachError(func(t string, p int32, err error) {
			failed = true
			c.log.Warn("notifier: fetch error", "topic", t, "partition", p, "err", err)
		})
		var jobs []*job
		fs.EachRecord(func(r *kgo.Record) { jobs = append(jobs, parseJob(r)) })
		if len(jobs) > 0 {
			c.add(jobs)
		}
		c.cl.AllowRebalance()
		if failed && len(jobs) == 0 && !backoff.Sleep(ctx, 250*time.Millisecond) {
			return
		}
	}
}

func (c *consumer) add(jobs []*job) {
	c.mu.Lock()
	touched := map[*partition]struct{}{}
	for _, j := range jobs {
		k := kafkax.TopicPartition{Topic: j.rec.Topic, Partition: j.rec.Partition}
		p := c.parts[k]
		if p == nil {
			p = &partition{TopicPartition: k, waiting: map[string][]*item{}, busyKeys: map[string]struct{}{}}
			p.ctx, p.cancel = context.WithCancel(c.workCtx)
			c.parts[k] = p
		}
		it := &item{j: j}
		p.items = append(p.items, it)
		touched[p] = struct{}{}
		if j.skip {
			// Nothing to send: finished at once, committed once the records
			// before it are.
			it.state = done
			c.n.m.attempt(ResultSkipped)
			continue
		}
		p.waiting[j.host] = append(p.waiting[j.host], it)
		p.dirty = true
	}
	var pause map[string][]int32
	for p := range touched {
		if rec := popDone(p); rec != nil {
			c.cl.MarkCommitRecords(rec)
		}
		// Pause here, before the next poll, so that no more than one poll
		// lands on a full partition.
		if !p.paused && len(p.items) >= c.buffer {
			p.paused = true
			pause = addTP(pause, p.TopicPartition)
		}
	}
	if pause != nil {
		c.cl.PauseFetchPartitions(pause)
	}
	c.mu.Unlock()
	c.wake()
}

// dispatch starts due records whenever something changes (records added, a
// record finished) or a due time arrives, until ctx is done.
func (c *consumer) dispatch(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		case <-t.C:
		}
		c.mu.Lock()
		next := c.pumpLocked(time.Now())
		c.mu.Unlock()
		if !next.IsZero() {
			t.Reset(max(time.Until(next), time.Millisecond))
		}
	}
}

// pumpLocked starts what can start and returns the earliest due time still
// waiting. Go's random map order spreads free slots over the partitions.
func (c *consumer) pumpLocked(now time.Time) time.Time {
	var next time.Time
	if c.stopping {
		return next
	}
	var pause, resume map[string][]int32
	buffered := 0
	for _, p := range c.parts {
		buffered += len(p.items)
		if p.draining {
			continue
		}
		if p.dirty || (!p.nextDue.IsZero() && !now.Before(p.nextDue)) {
			p.dirty, p.nextDue = false, time.Time{}
			c.scanLocked(p, now)
		}
		if !p.nextDue.IsZero() && (next.IsZero() || p.nextDue.Before(next)) {
			next = p.nextDue
		}
		switch n := len(p.items); {
		case !p.paused && n >= c.buffer:
			p.paused = true
			pause = addTP(pause, p.TopicPartition)
		case p.paused && n <= c.buffer/2:
			p.paused = false
			resume = addTP(resume, p.TopicPartition)
		}
	}
	if pause != nil {
		c.cl.PauseFetchPartitions(pause)
	}
	if resume != nil {
		c.cl.ResumeFetchPartitions(resume)
	}
	c.n.m.buffered.Set(float64(buffered))
	return next
}

func addTP(m map[string][]int32, k kafkax.TopicPartition) map[string][]int32 {
	if m == nil {
		m = map[string][]int32{}
	}
	m[k.Topic] = append(m[k.Topic], k.Partition)
	return m
}

// scanLocked starts what can start in p. It walks p's records host by host,
// so a flood for one receiver that is at its cap costs one map lookup, not a
// walk over its records.
func (c *consumer) scanLocked(p *partition, now time.Time) {
	for host, q := range p.waiting {
		if host != "" && c.perHost[host] >= c.maxPerHost {
			c.blockOn(host, p)
			continue
		}
		for _, it := range q {
			if it.state != waiting {
				continue
			}
			j := it.j
			if !j.due.IsZero() && now.Before(j.due) {
				if p.nextDue.IsZero() || j.due.Before(p.nextDue) {
					p.nextDue = j.due
				}
				continue
			}
			key := string(j.rec.Key)
			if _, busy := p.busyKeys[key]; busy && key != "" {
				continue
			}
			if c.inFlight >= c.maxInFlight {
				c.starved, p.dirty = true, true
				return
			}
			c.start(p, it, key)
			if host != "" && c.perHost[host] >= c.maxPerHost {
				c.blockOn(host, p)
				break
			}
		}
		// Drop started records from the front of the host's queue.
		i := 0
		for i < len(q) && q[i].state != waiting {
			i++
		}
		if i == len(q) {
			delete(p.waiting, host)
		} else if i > 0 {
			clear(q[:i])
			p.waiting[host] = q[i:]
		}
	}
}

func (c *consumer) blockOn(host string, p *partition) {
	ps := c.blocked[host]
	if ps == nil {
		ps = map[*partition]struct{}{}
		c.blocked[host] = ps
	}
	ps[p] = struct{}{}
}

func (c *consumer) start(p *partition, it *item, key string) {
	it.state = running
	c.inFlight++
	if h := it.j.host; h != "" {
		c.perHost[h]++
	}
	if key != "" {
		p.busyKeys[key] = struct{}{}
	}
	p.wg.Add(1)
	go c.work(p, it)
}

// work makes one record's attempt, gives its slots back at once, and settles
// the record when what the attempt leads to is durable (notifier.write).
func (c *consumer) work(p *partition, it *item) {
	c.n.m.inFlight.Inc()
	w, ok := c.n.process(p.ctx, it.j)
	c.n.m.inFlight.Dec()
	c.release(p, it)
	if !ok {
		c.settle(p, it, false)
		return
	}
	c.n.write(w, func(ok bool) { c.settle(p, it, ok) })
}

// release frees the record's delivery slot, its host's and its call's: the
// next event of the call may go as soon as this one's request is answered.
func (c *consumer) release(p *partition, it *item) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inFlight--
	delete(p.busyKeys, string(it.j.rec.Key))
	p.dirty = true
	if h := it.j.host; h != "" {
		if c.perHost[h]--; c.perHost[h] == 0 {
			delete(c.perHost, h)
		}
		for q := range c.blocked[h] {
			q.dirty = true
		}
		delete(c.blocked, h)
	}
	if c.starved {
		c.starved = false
		for _, q := range c.parts {
			q.dirty = true
		}
	}
	c.wake()
}

// settle finishes a started record: done (markable) when ok, abandoned (never
// marked) when its context ended first.
func (c *consumer) settle(p *partition, it *item, ok bool) {
	defer p.wg.Done()
	c.mu.Lock()
	defer c.mu.Unlock()
	it.state = abandoned
	if ok {
		it.state = done
	}
	// MarkCommitRecords is safe under c.mu: franz-go never holds its group
	// lock while it runs our rebalance callbacks, which take c.mu.
	if rec := popDone(p); rec != nil && !p.revoked {
		c.cl.MarkCommitRecords(rec)
	}
	c.wake()
}

// popDone drops the finished records at the head of p and returns the last
// of them: everything up to it is finished, so it may be marked.
func popDone(p *partition) *kgo.Record {
	i := 0
	for i < len(p.items) && p.items[i].state == done {
		i++
	}
	if i == 0 {
		return nil
	}
	last := p.items[i-1].j.rec
	clear(p.items[:i])
	p.items = p.items[i:]
	return last
}

// detach stops dispatching on the given partitions (all when tps is nil) and
// forgets them; their running records finish or are canceled by the caller.
func (c *consumer) detach(tps map[string][]int32, lost bool) []*partition {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*partition
	take := func(k kafkax.TopicPartition) {
		p := c.parts[k]
		if p == nil {
			return
		}
		delete(c.parts, k)
		p.draining, p.revoked = true, lost
		out = append(out, p)
	}
	if tps == nil {
		c.stopping = true
		for k := range c.parts {
			take(k)
		}
	}
	for t, ps := range tps {
		for _, pn := range ps {
			take(kafkax.TopicPartition{Topic: t, Partition: pn})
		}
	}
	return out
}

// drainParts lets running records finish for up to d, then cancels them.
// Records that finish in time are marked; canceled ones are not.
func (c *consumer) drainParts(ps []*partition, d time.Duration) {
	finished := make(chan struct{})
	go func() {
		for _, p := range ps {
			p.wg.Wait()
		}
		close(finished)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-finished:
	case <-t.C:
		for _, p := range ps {
			p.cancel()
		}
		<-finished
	}
	c.mu.Lock()
	for _, p := range ps {
		p.revoked = true
		p.cancel()
	}
	c.mu.Unlock()
}

// onRevoked runs while we still own the partitions: let their deliveries
// finish (bounded), commit what is marked, and forget them. The drain bound
// (timeout + produce timeout) stays below the rebalance timeout, so the
// group does not kick us for it.
func (c *consumer) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	ps := c.detach(revoked, false)
	c.drainParts(ps, c.drain)
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		c.log.Warn("notifier: commit on revoke failed; the new owner re-delivers from the last commit", "err", err)
	}
	cl.ResumeFetchPartitions(revoked)
}

// onLost: the partitions are already someone else's; a commit would fail or,
// worse, rewind the new owner. Cancel and forget.
func (c *consumer) onLost(_ context.Context, cl *kgo.Client, lost map[string][]int32) {
	ps := c.detach(lost, true)
	for _, p := range ps {
		p.cancel()
	}
	c.drainParts(ps, 0)
	cl.ResumeFetchPartitions(lost)
}

// shutdown stops dispatching, lets running deliveries finish (bounded) and
// commits what is marked.
func (c *consumer) shutdown(ctx context.Context) error {
	ps := c.detach(nil, false)
	c.drainParts(ps, c.drain)
	return c.cl.CommitMarkedOffsets(ctx)
}
