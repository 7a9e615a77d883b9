package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/schemas"
)

// partitionState is what one partition of the state topic holds: its
// campaigns with their contacts, and its scheduled single calls.
type partitionState struct {
	campaigns map[string]*campaign
	pacers    map[string]*pacer
	scheduled map[string]*schemas.ScheduledCallState
	records   int
	unread    int // records that could not be read (logged, left out)
}

// loadState reads partition p of the state topic from its start to its
// high watermark. The previous owner wrote every state it acted on before it
// committed the commands that led to it (acks=all), so everything the
// committed offset stands for is below the watermark read after the
// assignment.
func (s *scheduler) loadState(ctx context.Context, p int32) (*partitionState, error) {
	adm := kadm.NewClient(s.prod)
	starts, err := adm.ListStartOffsets(ctx, schemas.TopicCampaignState)
	if err != nil {
		return nil, fmt.Errorf("list start offsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, schemas.TopicCampaignState)
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	so, ok1 := starts.Lookup(schemas.TopicCampaignState, p)
	eo, ok2 := ends.Lookup(schemas.TopicCampaignState, p)
	if !ok1 || !ok2 || so.Err != nil || eo.Err != nil {
		return nil, fmt.Errorf("offsets of %s/%d: %v %v", schemas.TopicCampaignState, p, so.Err, eo.Err)
	}
	latest := map[string]*kgo.Record{}
	var order []string
	if eo.Offset > so.Offset {
		opts := append(append([]kgo.Opt{}, s.kafkaOpts...),
			kgo.ClientID(s.cfg.Kafka.ClientID+"-state-loader"),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{schemas.TopicCampaignState: {p: kgo.NewOffset().At(so.Offset)}}),
		)
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return nil, err
		}
		defer cl.Close()
		for done := false; !done; {
			fs := cl.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			var ferr error
			fs.EachError(func(_ string, _ int32, err error) {
				if !errors.Is(err, context.Canceled) {
					ferr = err
				}
			})
			if ferr != nil {
				return nil, ferr
			}
			fs.EachRecord(func(r *kgo.Record) {
				k := string(r.Key)
				if _, ok := latest[k]; !ok {
					order = append(order, k)
				}
				latest[k] = r
				if r.Offset >= eo.Offset-1 {
					done = true
				}
			})
		}
	}
	return s.assemble(latest, order), nil
}

// assemble builds the partition's campaigns and scheduled calls from the
// latest record of each key. A campaign's contacts may come before the
// campaign's own record in the log, so they are gathered first.
func (s *scheduler) assemble(latest map[string]*kgo.Record, order []string) *partitionState {
	ps := &partitionState{campaigns: map[string]*campaign{}, pacers: map[string]*pacer{},
		scheduled: map[string]*schemas.ScheduledCallState{}, records: len(latest)}
	camps := map[string]schemas.CampaignState{}
	contacts := map[string][]*schemas.ContactState{}
	for _, key := range order {
		r := latest[key]
		if r.Value == nil {
			continue // a tombstone
		}
		var err error
		switch typ := kafkax.Header(r, schemas.HeaderType); {
		case typ == schemas.TypeCampaignState && strings.HasPrefix(key, "c/"):
			var st schemas.CampaignState
			if err = json.Unmarshal(r.Value, &st); err == nil && schemas.CampaignStateKey(st.Campaign.CampaignID) == key {
				camps[st.Campaign.CampaignID] = st
			} else if err == nil {
				err = errors.New("key does not match the campaign id")
			}
		case typ == schemas.TypeContactState && strings.HasPrefix(key, "k/"):
			var k schemas.ContactState
			if err = json.Unmarshal(r.Value, &k); err == nil && schemas.ContactStateKey(k.CampaignID, k.Contact.ContactID) == key {
				contacts[k.CampaignID] = append(contacts[k.CampaignID], &k)
			} else if err == nil {
				err = errors.New("key does not match the contact")
			}
		case typ == schemas.TypeScheduledCallState && strings.HasPrefix(key, "s/"):
			var st schemas.ScheduledCallState
			if err = json.Unmarshal(r.Value, &st); err == nil && schemas.ScheduledCallStateKey(st.Scheduled.Request.CallID) == key {
				ps.scheduled[st.Scheduled.Request.CallID] = &st
			} else if err == nil {
				err = errors.New("key does not match the call id")
			}
		default:
			err = fmt.Errorf("unexpected type %q for this key", typ)
		}
		if err != nil {
			ps.unread++
			s.log.Error("scheduler: unreadable state record left out", "key", key, "offset", r.Offset, "err", err)
		}
	}
	for id, st := range camps {
		c, last, err := restore(st, contacts[id])
		if err != nil {
			ps.unread++
			s.log.Error("scheduler: campaign state cannot be restored; its contacts are not released", "campaign_id", id,
				"workspace_id", st.Campaign.WorkspaceID, "err", err)
			continue
		}
		pc := newPacer(st.Campaign.Pacing.CallsPerSecond, st.Campaign.Pacing.MaxConcurrent)
		pc.last = last
		ps.campaigns[id], ps.pacers[id] = c, &pc
	}
	return ps
}

// restore makes a campaign of its loaded state and contacts. The counters
// are derived from the contacts, never taken from the stored campaign state:
// a crash between writing a contact and writing its campaign leaves the
// latter behind. lastRelease is the latest attempt's release, so a new
// owner keeps the pacing interval across the handover.
func restore(st schemas.CampaignState, contacts []*schemas.ContactState) (c *campaign, lastRelease time.Time, err error) {
	ws, err := parseWindows(st.Campaign.Schedule.Windows)
	if err != nil {
		return nil, time.Time{}, err
	}
	st.Counters = schemas.CampaignCounters{ByState: map[schemas.ContactStatus]int{}, ByOutcome: map[schemas.Outcome]int{}}
	c = &campaign{state: st, contacts: make(map[string]*schemas.ContactState, len(contacts)),
		numbers: make(map[string]string, len(contacts)), windows: ws}
	n := &c.state.Counters
	for _, k := range contacts {
		if k.WorkspaceID != st.Campaign.WorkspaceID {
			continue
		}
		c.contacts[k.Contact.ContactID], c.numbers[k.Contact.To] = k, k.Contact.ContactID
		n.Contacts++
		n.Attempts += len(k.Attempts)
		n.ByState[k.Status]++
		if k.Outcome != "" {
			n.ByOutcome[k.Outcome]++
		}
		for _, a := range k.Attempts {
			if a.ReleasedAt.After(lastRelease) {
				lastRelease = a.ReleasedAt
			}
		}
		switch k.Status {
		case schemas.ContactQueued:
			c.due.schedule(k.Contact.ContactID, k.UpdatedAt)
		case schemas.ContactWaiting:
			at := k.UpdatedAt
			if k.NextDueAt != nil {
				at = *k.NextDueAt
			}
			c.due.schedule(k.Contact.ContactID, at)
		}
	}
	n.InProgress = n.ByState[schemas.ContactCalling]
	return c, lastRelease, nil
}
