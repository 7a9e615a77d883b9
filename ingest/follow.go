package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/schemas"
)

// followedTopics feed the call-state store.
var followedTopics = []string{schemas.TopicRequested, schemas.TopicEvents, schemas.TopicWebhookDeliveries}

// follower reads every partition of followedTopics into the store, directly:
// no consumer group, so every replica reads every call, and no committed
// offsets, so every start reads again from INGEST_CALLS_RETENTION ago (the
// first offset at or after that time, per partition), or from fewer records
// back when that window holds far more calls than INGEST_CALLS_MAX (see
// lookback), so a start costs at most about INGEST_CALLS_MAX calls' worth
// of records. Until it has read up
// to the end offsets the partitions had when it started, the store is
// incomplete and /readyz answers 503; after that a lag only delays what the
// API shows (eventual consistency), it does not make the replica unready.
//
// It shares ingest's Kafka client: franz-go fetches on connections of their
// own, so reading never queues behind producing, and the client's metrics
// (dialstream_ingest_kafka_*) cover both.
type follower struct {
	cl        *kgo.Client
	st        *store
	reg       *registry.Registry
	log       *slog.Logger
	m         *metrics
	retention time.Duration
	maxCalls  int

	caughtUp atomic.Bool
	behind   atomic.Int64 // partitions not yet read up to their start-up end offset
	pending  map[kafkax.TopicPartition]int64
	done     chan struct{}
}

func newFollower(cl *kgo.Client, st *store, reg *registry.Registry, log *slog.Logger, m *metrics, retention time.Duration, maxCalls int) *follower {
	return &follower{cl: cl, st: st, reg: reg, log: log, m: m, retention: retention, maxCalls: maxCalls, done: make(chan struct{})}
}

// recordsPerCall are generous counts of one call's records per topic: its
// request, cancel and the dialer's commands (admission, dial result,
// LiveKit webhooks); its five lifecycle events; its delivery attempts
// (more when retried). lookback uses them to skip what the count bound
// would drop anyway.
var recordsPerCall = map[string]int64{schemas.TopicRequested: 16, schemas.TopicEvents: 8, schemas.TopicWebhookDeliveries: 16}

// lookback is how many records back from a partition's end a start needs
// to read at most: INGEST_CALLS_MAX calls spread over the topic's
// partitions, twice over for keys that hash unevenly. Calls older than
// that would be dropped for the count bound as soon as they were read.
func (f *follower) lookback(topic string, partitions int) int64 {
	return 2 * recordsPerCall[topic] * int64((f.maxCalls+partitions-1)/partitions)
}

// ready reports whether the store holds everything Kafka held at start.
func (f *follower) ready() bool { return f.caughtUp.Load() }

// run follows the topics until ctx ends.
func (f *follower) run(ctx context.Context) {
	defer close(f.done)
	start := time.Now()
	offsets, err := f.startOffsets(ctx)
	if err != nil {
		return // ctx ended
	}
	f.cl.AddConsumePartitions(offsets)
	f.log.Info("call state: loading from Kafka", "partitions_behind", len(f.pending), "since", start.Add(-f.retention).UTC().Format(time.RFC3339))
	f.checkCaughtUp(start)

	swept := make(chan struct{})
	go func() { defer close(swept); f.sweep(ctx) }()
	defer func() { <-swept }()
	var lastWarn time.Time
	for {
		fs := f.cl.PollRecords(ctx, 1000)
		if ctx.Err() != nil {
			return
		}
		errs := 0
		fs.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
				return
			}
			errs++
			f.m.projectionFetchErrors.Inc()
			// One line per 30 s: a broker outage must not flood the log.
			if time.Since(lastWarn) > 30*time.Second {
				lastWarn = time.Now()
				f.log.Warn("call state: fetch error; retrying", "topic", topic, "partition", p, "err", err)
			}
		})
		fs.EachRecord(f.apply)
		f.checkCaughtUp(start)
		if errs > 0 && fs.NumRecords() == 0 {
			// Nothing but errors: pause before asking again, so a failing
			// broker is not polled in a tight loop.
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// sweep drops calls past the retention, about every 1% of it (between a
// second and a minute), so an idle replica forgets them too.
func (f *follower) sweep(ctx context.Context) {
	t := time.NewTicker(min(time.Minute, max(time.Second, f.retention/100)))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f.st.evict()
		}
	}
}

// startOffsets lists, per partition, the first offset at or after the
// retention bound and the end offset. It retries until every followed topic
// exists (the notifier creates the deliveries topic; a fresh cluster may not
// have it yet), and fails only when ctx ends.
func (f *follower) startOffsets(ctx context.Context) (map[string]map[int32]kgo.Offset, error) {
	adm := kadm.NewClient(f.cl)
	warned := false
	for {
		offsets, err := f.listOffsets(ctx, adm)
		if err == nil {
			return offsets, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !warned {
			f.log.Warn("call state: cannot list the followed topics yet; retrying every second", "err", err)
			warned = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (f *follower) listOffsets(ctx context.Context, adm *kadm.Client) (map[string]map[int32]kgo.Offset, error) {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(lctx, followedTopics...)
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	bound := time.Now().Add(-f.retention).UnixMilli()
	starts, err := adm.ListOffsetsAfterMilli(lctx, bound, followedTopics...)
	if err != nil {
		return nil, fmt.Errorf("list offsets after %d: %w", bound, err)
	}
	for _, t := range followedTopics {
		if len(ends[t]) == 0 || len(starts[t]) == 0 {
			return nil, fmt.Errorf("topic %s does not exist", t)
		}
	}
	if err := ends.Error(); err != nil {
		return nil, err
	}
	if err := starts.Error(); err != nil {
		return nil, err
	}
	out := map[string]map[int32]kgo.Offset{}
	pending := map[kafkax.TopicPartition]int64{}
	starts.Each(func(o kadm.ListedOffset) {
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]kgo.Offset{}
		}
		start := o.Offset
		end, ok := ends.Lookup(o.Topic, o.Partition)
		if ok {
			start = max(start, end.Offset-f.lookback(o.Topic, len(ends[o.Topic])))
		}
		out[o.Topic][o.Partition] = kgo.NewOffset().At(start)
		if ok && end.Offset > start {
			pending[kafkax.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = end.Offset
		}
	})
	f.pending = pending
	f.behind.Store(int64(len(pending)))
	return out, nil
}

func (f *follower) checkCaughtUp(start time.Time) {
	if len(f.pending) > 0 || f.caughtUp.Load() {
		return
	}
	f.caughtUp.Store(true)
	f.m.projectionLoadSeconds.Set(time.Since(start).Seconds())
	f.log.Info("call state: loaded", "calls", f.st.len(), "seconds", time.Since(start).Seconds())
}

// apply folds one record into the store. A record that cannot be read is
// counted and skipped: the projection must never stall on one record, and
// the services that own these topics dead-letter bad records themselves.
func (f *follower) apply(r *kgo.Record) {
	tp := kafkax.TopicPartition{Topic: r.Topic, Partition: r.Partition}
	if end, ok := f.pending[tp]; ok && r.Offset+1 >= end {
		delete(f.pending, tp)
		f.behind.Store(int64(len(f.pending)))
	}
	res := applyRecord(f.st, f.reg, r)
	f.m.projectionRecords.WithLabelValues(topicLabel(r.Topic), string(res)).Inc()
}

// applyResult labels dialstream_ingest_projection_records_total.
type applyResult string

const (
	applyTaken   applyResult = "taken"   // changed the store
	applySkipped applyResult = "skipped" // not for the store, a replay, a foreign or expired call
	applyInvalid applyResult = "invalid" // unreadable
)

var callIDPattern = regexp.MustCompile(`^[0-9a-f]{24}$`)

// applyRecord folds r into st. Requests and cancels (written by anyone who
// may write the requested topic) are checked against their schema, as the
// dialer checks them, and kept only for workspaces of the registry. Events
// and delivery attempts are written only by the dialer and the notifier,
// after validation; they get a cheaper structural check.
func applyRecord(st *store, reg *registry.Registry, r *kgo.Record) applyResult {
	typ := kafkax.Header(r, schemas.HeaderType)
	switch r.Topic {
	case schemas.TopicRequested:
		if typ != schemas.TypeCallRequested && typ != schemas.TypeCallCancel {
			return applySkipped // the dialer's own commands
		}
		ev, err := schemas.Decode(r)
		if err != nil {
			return applyInvalid
		}
		if typ == schemas.TypeCallCancel {
			var c schemas.CallCancel
			if json.Unmarshal(ev.Data, &c) != nil || string(r.Key) != c.CallID {
				return applyInvalid
			}
			return taken(st.putCancel(&c))
		}
		var req schemas.CallRequested
		if json.Unmarshal(ev.Data, &req) != nil || string(r.Key) != req.CallID {
			return applyInvalid
		}
		if _, ok := reg.Workspace(req.WorkspaceID); !ok {
			return applySkipped
		}
		return taken(st.putRequest(&req, r.Partition, r.Offset, false))
	case schemas.TopicEvents:
		id := kafkax.Header(r, schemas.HeaderID)
		if id == "" || statusOfType(typ) == "" || len(id) > 256 {
			return applyInvalid
		}
		var ev eventFacts
		if json.Unmarshal(r.Value, &ev) != nil || !callIDPattern.MatchString(ev.CallID) || string(r.Key) != ev.CallID ||
			ev.WorkspaceID == "" || ev.Sequence < 1 || eventTypes[ev.Status] != typ || ev.OccurredAt.IsZero() {
			return applyInvalid
		}
		if _, ok := reg.Workspace(ev.WorkspaceID); !ok {
			return applySkipped
		}
		return taken(st.putEvent(&ev, id, copyRecord(r)))
	case schemas.TopicWebhookDeliveries:
		if typ != schemas.TypeWebhookAttempt {
			return applyInvalid
		}
		var a schemas.WebhookAttempt
		if json.Unmarshal(r.Value, &a) != nil || !callIDPattern.MatchString(a.CallID) || a.WorkspaceID == "" ||
			a.EventID == "" || a.AttemptedAt.IsZero() {
			return applyInvalid
		}
		if _, ok := reg.Workspace(a.WorkspaceID); !ok {
			return applySkipped
		}
		return taken(st.putAttempt(&a))
	}
	return applySkipped
}

func taken(ok bool) applyResult {
	if ok {
		return applyTaken
	}
	return applySkipped
}

// topicLabel bounds the topic label to the followed topics.
func topicLabel(t string) string {
	switch t {
	case schemas.TopicRequested:
		return "requested"
	case schemas.TopicEvents:
		return "events"
	case schemas.TopicWebhookDeliveries:
		return "deliveries"
	}
	return "other"
}
