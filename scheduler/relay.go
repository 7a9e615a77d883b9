package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/backoff"
	"github.com/dialstream/dialstream/schemas"
)

// relay is the outcome relay: group OutcomesGroup on the events topic turns
// every ended event of a campaign call into a campaign.outcome command keyed
// by its campaign, so the outcome reaches the campaign's owner in order with
// its other commands. At least once: an event's offset is marked only after
// its outcome is written, and the campaign applies an outcome for a
// (contact, attempt) it has already as a no-op.
type relay struct {
	cl     *kgo.Client
	log    *slog.Logger
	m      *metrics
	group  string
	joined atomic.Bool
}

func newRelay(cfg Config, base []kgo.Opt, m *metrics) (*relay, error) {
	r := &relay{log: cfg.Logger, m: m, group: cfg.OutcomesGroup}
	opts := append(append([]kgo.Opt{}, base...),
		kgo.ClientID(cfg.Kafka.ClientID+"-outcomes"),
		kgo.ConsumerGroup(cfg.OutcomesGroup),
		kgo.ConsumeTopics(schemas.TopicEvents),
		// A new deployment relays the outcomes of the campaign calls the
		// events topic still holds; relaying one twice is harmless.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { r.joined.Store(true) }),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, _ map[string][]int32) {
			if err := cl.CommitMarkedOffsets(ctx); err != nil {
				r.log.Warn("scheduler: outcome relay commit on revoke failed", "err", err)
			}
		}),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	if st := cfg.Kafka.SessionTimeout; st > 0 {
		opts = append(opts, kgo.SessionTimeout(st), kgo.HeartbeatInterval(min(3*time.Second, st/4)))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("scheduler: kafka outcome relay: %w", err)
	}
	r.cl = cl
	return r, nil
}

// run relays until ctx ends. A batch's outcomes are written (acks=all, by
// the relay's own client, whose default partitioner hashes the campaign id)
// before any of its offsets is marked; a failed write is retried, holding
// the batch, for as long as the relay runs.
func (r *relay) run(ctx context.Context) {
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, pollTimeout)
		fs := r.cl.PollRecords(pctx, 1000)
		cancel()
		if fs.IsClientClosed() {
			return
		}
		fs.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			r.log.Warn("scheduler: outcome relay fetch error", "topic", t, "partition", p, "err", err)
		})
		var out []*kgo.Record
		fs.EachRecord(func(rec *kgo.Record) {
			if o := r.outcome(rec); o != nil {
				out = append(out, o)
			}
		})
		if r.write(ctx, out) {
			fs.EachRecord(func(rec *kgo.Record) { r.cl.MarkCommitRecords(rec) })
		}
		r.cl.AllowRebalance()
	}
}

// outcome is the outcome command of an events record, or nil when the
// record is not an ended campaign call. Records that do not decode are the
// notifier's to dead-letter, not the relay's: it passes over them.
func (r *relay) outcome(rec *kgo.Record) *kgo.Record {
	ev, err := schemas.Decode(rec)
	if err != nil {
		return nil
	}
	o, ok, err := outcomeOf(ev)
	if err != nil {
		r.log.Error("scheduler: ended event passed its schema but does not decode; outcome not relayed", "event_id", ev.ID, "err", err)
		return nil
	}
	if !ok {
		return nil
	}
	out, err := outcomeRecord(o)
	if err != nil {
		r.log.Error("scheduler: outcome does not match its schema; not relayed", "call_id", o.CallID, "campaign_id", o.CampaignID, "err", err)
		return nil
	}
	return out
}

func (r *relay) write(ctx context.Context, recs []*kgo.Record) bool {
	wait := backoff.Doubling{Next: 100 * time.Millisecond, Max: 5 * time.Second}
	for len(recs) > 0 {
		var failed []*kgo.Record
		var ferr error
		for _, res := range r.cl.ProduceSync(ctx, recs...) {
			if res.Err != nil {
				failed, ferr = append(failed, res.Record), res.Err
			}
		}
		r.m.outcomesRelayed.Add(float64(len(recs) - len(failed)))
		if len(failed) == 0 {
			return true
		}
		r.log.Warn("scheduler: relay outcomes failed; retrying", "records", len(failed), "err", ferr)
		if !wait.Wait(ctx) {
			return false
		}
		recs = failed
	}
	return true
}

// ready is the readiness check that the relay has joined its group.
func (r *relay) ready(context.Context) error {
	if !r.joined.Load() {
		return fmt.Errorf("joining consumer group %s", r.group)
	}
	return nil
}

// close commits what was relayed and leaves the group.
func (r *relay) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.cl.CommitMarkedOffsets(ctx); err != nil {
		r.log.Warn("scheduler: outcome relay final commit failed", "err", err)
	}
	r.cl.CloseAllowingRebalance()
}
