package scheduler

import (
	"container/heap"
	"time"

	"github.com/dialstream/dialstream/internal/compliance"
	"github.com/dialstream/dialstream/schemas"
)

// dueQueue orders a campaign's open contacts by the earliest instant each may
// be released. Entries are not removed when a contact changes: a stale entry
// (its generation is not the contact's latest) is dropped when it comes up.
// That keeps every change O(log n) without an index into the heap, at the
// cost of a few dead entries until they surface.
type dueQueue struct {
	items []dueItem
	gen   map[string]uint32 // contact id -> generation of its live entry
}

type dueItem struct {
	at  time.Time
	id  string
	gen uint32
}

func (q *dueQueue) Len() int           { return len(q.items) }
func (q *dueQueue) Less(i, j int) bool { return q.items[i].at.Before(q.items[j].at) }
func (q *dueQueue) Swap(i, j int)      { q.items[i], q.items[j] = q.items[j], q.items[i] }
func (q *dueQueue) Push(x any)         { q.items = append(q.items, x.(dueItem)) }
func (q *dueQueue) Pop() any {
	it := q.items[len(q.items)-1]
	q.items = q.items[:len(q.items)-1]
	return it
}

// schedule (re)places a contact at at, superseding its earlier entry.
func (q *dueQueue) schedule(id string, at time.Time) {
	if q.gen == nil {
		q.gen = map[string]uint32{}
	}
	g := q.gen[id] + 1
	q.gen[id] = g
	heap.Push(q, dueItem{at: at, id: id, gen: g})
}

// peek returns the earliest live entry, dropping stale ones on the way.
func (q *dueQueue) peek() (dueItem, bool) {
	for q.Len() > 0 {
		it := q.items[0]
		if q.gen[it.id] == it.gen {
			return it, true
		}
		heap.Pop(q)
	}
	return dueItem{}, false
}

// pop removes the earliest live entry; the contact has none until it is
// scheduled again.
func (q *dueQueue) pop() {
	it := heap.Pop(q).(dueItem)
	delete(q.gen, it.id)
}

// zonesOf returns the zones a contact's local time is read in: its own
// timezone, else its number's zones, else the campaign's default_timezone.
// Nil (no zone known) makes every window refuse, as compliance does for a
// number it cannot place.
func zonesOf(k schemas.Contact, defaultZone string) []*time.Location {
	if k.Timezone != "" {
		if l, err := time.LoadLocation(k.Timezone); err == nil {
			return []*time.Location{l}
		}
	}
	if n, err := compliance.Classify(k.To); err == nil && len(n.Zones()) > 0 {
		return n.Zones()
	}
	if defaultZone != "" {
		if l, err := time.LoadLocation(defaultZone); err == nil {
			return []*time.Location{l}
		}
	}
	return nil
}

// neverRetry is how long a contact whose windows never meet the workspace's
// calling hours waits before it is looked at again: the hours are the
// operator's to change, so it is not ended, and a day keeps it off the
// release loop's hot path.
const neverRetry = 24 * time.Hour

// releasable picks the contacts of a running campaign that may be released
// at now, in due order, within the pacer; the caller releases each
// (campaign.release) and tells the pacer. wake is when to look again (zero:
// not before a command arrives, e.g. an outcome freeing a concurrency slot).
// hours is the workspace's calling hours.
func (c *campaign) releasable(now time.Time, hours compliance.Hours, p *pacer) (out []*schemas.ContactState, wake time.Time) {
	camp := c.state.Campaign
	if c.state.Status != schemas.CampaignRunning {
		return nil, time.Time{}
	}
	if s := camp.Schedule.StartAt; s != nil && now.Before(*s) {
		return nil, *s
	}
	pc := *p
	for {
		it, ok := c.due.peek()
		if !ok {
			return out, time.Time{}
		}
		if it.at.After(now) {
			return out, earliest(wake, it.at)
		}
		k := c.contacts[it.id]
		if k == nil || (k.Status != schemas.ContactQueued && k.Status != schemas.ContactWaiting) {
			c.due.pop()
			continue
		}
		if k.NextDueAt != nil && k.NextDueAt.After(now) {
			c.due.schedule(it.id, *k.NextDueAt)
			continue
		}
		if r := c.windows.nextRelease(hours, zonesOf(k.Contact, camp.Schedule.DefaultTimezone), now); r.IsZero() {
			c.windowWaits++
			c.due.schedule(it.id, now.Add(neverRetry))
			continue
		} else if r.After(now) {
			c.windowWaits++
			c.due.schedule(it.id, r)
			continue
		}
		at, ok := pc.next(now, c.state.Counters.InProgress+len(out))
		if !ok {
			return out, time.Time{}
		}
		if at.After(now) {
			return out, at
		}
		pc.released(now)
		c.due.pop()
		out = append(out, k)
	}
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}
