package scheduler

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/backoff"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/schemas"
)

// writes are the records one round produced, in the three phases they are
// written in, each durable (acks=all) before the next starts:
//   - first: call requests and cancels (and dead letters), before any state
//     says they were written: a crash after a request and before the
//     contact's "calling" state releases the same attempt again, with the
//     same call id, which the dialer ignores; the other order could leave a
//     contact "calling" a call nobody requested;
//   - events: campaign events, before the state that counts them;
//   - states: contacts, then their campaign (which holds the applied
//     command offset), only the last state of each key.
type writes struct {
	first, events, states []*kgo.Record
	errs                  []error
}

func (w *writes) addFirst(r *kgo.Record, err error) { w.add(&w.first, r, err) }
func (w *writes) addEvent(r *kgo.Record, err error) { w.add(&w.events, r, err) }
func (w *writes) addState(r *kgo.Record, err error) { w.add(&w.states, r, err) }

func (w *writes) add(to *[]*kgo.Record, r *kgo.Record, err error) {
	if err != nil {
		w.errs = append(w.errs, err)
		return
	}
	*to = append(*to, r)
}

func (w *writes) len() int { return len(w.first) + len(w.events) + len(w.states) }

// lastPerKey keeps the last record of each key, in the order of those last
// records: a campaign whose state was written after each of several
// commands is written once, after all its contacts.
func lastPerKey(rs []*kgo.Record) []*kgo.Record {
	last := make(map[string]int, len(rs))
	for i, r := range rs {
		last[string(r.Key)] = i
	}
	out := make([]*kgo.Record, 0, len(last))
	for i, r := range rs {
		if last[string(r.Key)] == i {
			out = append(out, r)
		}
	}
	return out
}

// write fences the partition and writes w's phases. A record that did not
// match its schema is a bug in the scheduler: it is logged and left out
// rather than stalling the partition. false: the owner is to stop (fenced,
// or stopped while Kafka would not take the writes).
func (o *owner) write(w *writes) bool {
	for _, err := range w.errs {
		o.log.Error("scheduler: record does not match its schema; not written", "err", err)
	}
	if w.len() == 0 {
		return true
	}
	if err := o.commit(o.committed); err != nil {
		o.log.Warn("scheduler: partition fenced before writing; stopping its owner", "err", err)
		return false
	}
	for _, phase := range [][]*kgo.Record{w.first, w.events, lastPerKey(w.states)} {
		if !o.produce(phase) {
			return false
		}
	}
	return true
}

// produce writes recs, retrying those that failed for as long as the owner
// runs: the idempotent producer keeps a retried record single within its
// session, and the ids of everything written are stable across sessions.
func (o *owner) produce(recs []*kgo.Record) bool {
	wait := backoff.Doubling{Next: 100 * time.Millisecond, Max: 5 * time.Second}
	for len(recs) > 0 {
		var failed []*kgo.Record
		for _, res := range o.s.prod.ProduceSync(o.ctx, recs...) {
			if res.Err != nil {
				failed = append(failed, res.Record)
			}
		}
		if len(failed) == 0 {
			return true
		}
		if o.ctx.Err() != nil {
			return false
		}
		o.log.Warn("scheduler: write failed; retrying", "records", len(failed), "topic", failed[0].Topic)
		if !wait.Wait(o.ctx) {
			return false
		}
		recs = failed
	}
	return true
}

// commit commits offset for this partition, retrying while the broker is
// unreachable; an error means the partition is no longer this process's.
func (o *owner) commit(offset int64) error {
	wait := backoff.Doubling{Next: 200 * time.Millisecond, Max: 5 * time.Second}
	for {
		ctx, cancel := context.WithTimeout(o.ctx, 10*time.Second)
		err := kafkax.CommitOffset(ctx, o.s.cons, schemas.TopicCampaignCommands, o.p, offset)
		cancel()
		if err == nil || kafkax.Fenced(err) {
			return err
		}
		o.log.Warn("scheduler: commit failed; retrying", "offset", offset, "err", err)
		if !wait.Wait(o.ctx) {
			return err
		}
	}
}
