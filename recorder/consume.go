package recorder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/dialstream/dialstream/internal/backoff"
	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/schemas"
)

// recordedTopics are the topics the records are made of, which the
// recorder creates when KAFKA_CREATE_TOPICS is set. Agent reports join
// them when they exist.
var recordedTopics = []string{schemas.TopicRequested, schemas.TopicEvents, schemas.TopicWebhookDeliveries}

// campaignTopics feed the campaign tables and scheduled calls. They are
// the scheduler's to create (the state topic is compacted and
// co-partitioned with the commands topic: a topic made here with the
// defaults would be neither). Until they exist the recorder consumes
// them anyway: franz-go does not ask the brokers to create a topic it
// consumes, reads the other topics as usual, asks for the missing one's
// metadata again every 5 s (its metadata min age), and the group
// rebalances onto the partitions once they appear
// (TestCampaignTopicsCreatedLater).
var campaignTopics = []string{schemas.TopicCampaignState, schemas.TopicCampaignCommands}

// consumedTopics are all the topics the recorder reads.
var consumedTopics = append(slices.Clip(recordedTopics), campaignTopics...)

// consumer is the recorder's group member. It reads a batch, writes its
// rows and the partitions' next offsets in one database transaction, and
// only then polls again: the database, not Kafka, holds its position.
//
// Effectively once, in three parts:
//   - a batch's rows and its offsets commit together, so a crash at any
//     point leaves the database either before the batch or after it;
//   - on assignment the member seeks every new partition to the offset
//     stored in the database (AdjustFetchOffsetsFn), whatever Kafka's
//     committed offset says, so it reads on from exactly where the rows end;
//   - each write names the offset it read from, and fails if the database
//     holds another one (callrecords.ErrOffsetMoved): a member that lost a
//     partition without knowing yet cannot write a batch its successor
//     wrote too. Idempotent writes (one row per event id and sequence, per
//     attempt offset) are the second guard.
//
// BlockRebalanceOnPoll keeps a rebalance from taking partitions between a
// poll and its commit. Kafka's committed offsets are still written (after
// the database commit, by AutoCommitMarks), only so that lag tools and
// KEDA see the group's progress; the recorder never reads them.
type consumer struct {
	cl       *kgo.Client
	st       *callrecords.Store
	reg      *registry.Registry
	group    string
	log      *slog.Logger
	m        *metrics
	tracer   trace.Tracer
	maxBatch int

	mu sync.Mutex
	// next is, per assigned partition, the offset stored in the database
	// as this member last read or wrote it (callrecords.NoOffset: none).
	next map[kafkax.TopicPartition]int64

	// failing holds the last write error until a batch commits again
	// (/readyz).
	failing atomic.Pointer[error]
}

// A batch is one database transaction, and its commit writes to the WAL
// every page the batch touched, whether one row changed there or a hundred:
// the cost of a call in the records falls as batches grow. By default a
// fetch returns as soon as one record is there, so a recorder keeping up
// with a busy ingest writes the few calls that arrived while its last batch
// was written. Its fetches ask the broker to wait up to fetchLinger for
// fetchMinBytes instead: at load a batch carries that linger's calls; idle,
// a record is seen at most fetchLinger late.
const (
	fetchLinger   = 10 * time.Millisecond
	fetchMinBytes = 256 << 10
)

// groupOpts are the options of the recorder's consumer: its group, topics,
// offsets and fetches.
func (c *consumer) groupOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.FetchMinBytes(fetchMinBytes),
		kgo.FetchMaxWait(fetchLinger),
		kgo.ConsumerGroup(c.group),
		kgo.ConsumeTopics(consumedTopics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.BlockRebalanceOnPoll(),
		kgo.AutoCommitMarks(),
		kgo.AdjustFetchOffsetsFn(c.seekToStored),
		kgo.OnPartitionsRevoked(c.forget),
		kgo.OnPartitionsLost(c.forget),
	}
}

// seekToStored replaces the offsets Kafka has for newly assigned
// partitions with those the database has (or the log start where it has
// none). An error makes franz-go leave the group and join again.
func (c *consumer) seekToStored(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	stored, err := c.storedOffsets(ctx)
	if err != nil {
		c.log.Warn("recorder: cannot read the stored offsets for new partitions; rejoining", "err", err)
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for topic, parts := range offsets {
		for p := range parts {
			tp := kafkax.TopicPartition{Topic: topic, Partition: p}
			if next, ok := stored[topic][p]; ok {
				parts[p] = kgo.NewOffset().At(next).WithEpoch(-1)
				c.next[tp] = next
			} else {
				parts[p] = kgo.NewOffset().AtStart()
				c.next[tp] = callrecords.NoOffset
			}
		}
	}
	c.log.Info("recorder: partitions assigned; reading on from the stored offsets", "partitions", len(c.next))
	return offsets, nil
}

// storedOffsets reads the group's positions, retrying briefly: it runs
// inside a rebalance.
func (c *consumer) storedOffsets(ctx context.Context) (map[string]map[int32]int64, error) {
	wait := backoff.Doubling{Next: 100 * time.Millisecond, Max: 2 * time.Second}
	for attempt := 1; ; attempt++ {
		stored, err := c.st.Offsets(ctx, c.group)
		if err == nil || attempt == 5 {
			return stored, err
		}
		if !wait.Wait(ctx) {
			return nil, err
		}
	}
}

// forget drops revoked or lost partitions (and commits Kafka's copy of the
// marks of revoked ones, for the lag tools).
func (c *consumer) forget(ctx context.Context, cl *kgo.Client, gone map[string][]int32) {
	c.mu.Lock()
	for topic, parts := range gone {
		for _, p := range parts {
			delete(c.next, kafkax.TopicPartition{Topic: topic, Partition: p})
		}
	}
	c.mu.Unlock()
	if err := cl.CommitMarkedOffsets(ctx); err != nil && !errors.Is(err, context.Canceled) {
		c.log.Debug("recorder: commit of Kafka's copy of the offsets failed (informational only)", "err", err)
	}
}

// run polls and writes until ctx ends.
func (c *consumer) run(ctx context.Context) {
	wait := backoff.Doubling{Next: 200 * time.Millisecond, Max: 30 * time.Second}
	for {
		fs := c.cl.PollRecords(ctx, c.maxBatch)
		if fs.IsClientClosed() || ctx.Err() != nil {
			c.cl.AllowRebalance()
			return
		}
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				c.log.Warn("recorder: fetch error; franz-go retries", "topic", topic, "partition", p, "err", err)
			}
		})
		recs := fs.Records()
		ok := len(recs) == 0 || c.write(ctx, recs)
		c.cl.AllowRebalance()
		if ok {
			wait.Next = 200 * time.Millisecond
			continue
		}
		if !wait.Wait(ctx) {
			return
		}
	}
}

// span of one partition's records in a batch.
type span struct{ first, last int64 }

// write writes recs in one transaction, or rewinds their partitions to the
// stored offsets so they are read again; false when it failed.
func (c *consumer) write(ctx context.Context, recs []*kgo.Record) bool {
	spans := map[kafkax.TopicPartition]span{}
	for _, r := range recs {
		tp := kafkax.TopicPartition{Topic: r.Topic, Partition: r.Partition}
		s, ok := spans[tp]
		if !ok {
			s.first = r.Offset
		}
		s.last = r.Offset
		spans[tp] = s
	}
	from := make(map[kafkax.TopicPartition]int64, len(spans))
	c.mu.Lock()
	for tp := range spans {
		n, ok := c.next[tp]
		if !ok {
			n = callrecords.NoOffset
		}
		from[tp] = n
	}
	c.mu.Unlock()

	ctx, sp := c.tracer.Start(ctx, "recorder.write", trace.WithAttributes(attribute.Int("records", len(recs))))
	defer sp.End()
	start := time.Now()
	counts := map[string]map[result]int{}
	err := c.st.Write(ctx, func(w *callrecords.Writer) error {
		clear(counts)
		for _, r := range recs {
			res, err := apply(ctx, w, c.reg, r)
			if err != nil {
				return err
			}
			t := topicLabel(r.Topic)
			if counts[t] == nil {
				counts[t] = map[result]int{}
			}
			counts[t][res]++
		}
		for tp, s := range spans {
			if err := w.Advance(ctx, c.group, tp.Topic, tp.Partition, from[tp], s.last+1); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		c.m.batchSeconds.Observe(time.Since(start).Seconds())
		c.mu.Lock()
		for tp, s := range spans {
			if _, assigned := c.next[tp]; assigned {
				c.next[tp] = s.last + 1
			}
		}
		c.mu.Unlock()
		for t, byResult := range counts {
			for res, n := range byResult {
				c.m.records.WithLabelValues(t, string(res)).Add(float64(n))
			}
		}
		c.cl.MarkCommitRecords(recs...)
		c.failing.Store(nil)
		return true
	}
	sp.RecordError(err)
	sp.SetStatus(codes.Error, "batch not written")
	if ctx.Err() != nil {
		return false
	}
	reason := failureDatabase
	if errors.Is(err, callrecords.ErrOffsetMoved) {
		reason = failureOffsetMoved
	}
	c.m.batchFailures.WithLabelValues(string(reason)).Inc()
	c.log.Warn("recorder: batch not written; its partitions are read again from the stored offsets",
		"records", len(recs), "reason", string(reason), "err", err)
	if reason == failureDatabase {
		werr := fmt.Errorf("recorder: last batch not written: %w", err)
		c.failing.Store(&werr)
	}
	c.rewind(ctx, spans)
	return false
}

// rewind seeks the batch's partitions back to the offsets the database
// holds (or to the batch's first record where it holds none: nothing
// before it was written either), dropping what was fetched past them.
func (c *consumer) rewind(ctx context.Context, spans map[kafkax.TopicPartition]span) {
	stored, err := c.st.Offsets(ctx, c.group)
	c.mu.Lock()
	defer c.mu.Unlock()
	seek := map[string]map[int32]kgo.EpochOffset{}
	for tp, s := range spans {
		at := s.first
		if err == nil {
			if n, ok := stored[tp.Topic][tp.Partition]; ok {
				at = n
			}
		} else if n, ok := c.next[tp]; ok && n != callrecords.NoOffset {
			at = n // the database is out of reach: where this member believes it is
		}
		if _, assigned := c.next[tp]; assigned && err == nil {
			c.next[tp] = callrecords.NoOffset
			if n, ok := stored[tp.Topic][tp.Partition]; ok {
				c.next[tp] = n
			}
		}
		if seek[tp.Topic] == nil {
			seek[tp.Topic] = map[int32]kgo.EpochOffset{}
		}
		seek[tp.Topic][tp.Partition] = kgo.EpochOffset{Epoch: -1, Offset: at}
	}
	c.cl.SetOffsets(seek)
}

// ready fails while batches are failing (the database is out of reach).
func (c *consumer) ready(context.Context) error {
	if e := c.failing.Load(); e != nil {
		return *e
	}
	return nil
}

// measureLag sets dialstream_recorder_lag_records from the end offsets and
// the positions stored in the database, for the whole group.
func (c *consumer) measureLag(ctx context.Context, adm *kadm.Client) error {
	ends, err := adm.ListEndOffsets(ctx, consumedTopics...)
	if err != nil {
		return err
	}
	starts, err := adm.ListStartOffsets(ctx, consumedTopics...)
	if err != nil {
		return err
	}
	stored, err := c.st.Offsets(ctx, c.group)
	if err != nil {
		return err
	}
	lag, bad := map[string]int64{}, map[string]bool{}
	ends.Each(func(e kadm.ListedOffset) {
		from, ok := stored[e.Topic][e.Partition]
		if !ok {
			s, found := starts.Lookup(e.Topic, e.Partition)
			if !found || s.Err != nil {
				bad[e.Topic] = true
				return
			}
			from = s.Offset
		}
		if e.Err != nil || e.Offset < 0 {
			bad[e.Topic] = true
			return
		}
		lag[e.Topic] += max(0, e.Offset-from)
	})
	for t, n := range lag {
		if !bad[t] {
			c.m.lag.WithLabelValues(topicLabel(t)).Set(float64(n))
		}
	}
	return nil
}
