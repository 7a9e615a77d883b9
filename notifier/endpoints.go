package notifier

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/backoff"
	"github.com/dialstream/dialstream/schemas"
)

// endpoints remembers which callback URLs answered 410 Gone. The memory is
// the compacted topic schemas.TopicWebhookEndpoints, which every replica
// follows from the start, so a 410 seen by one replica stops deliveries on
// all of them, and a restart forgets nothing.
//
// A replica that has not caught up yet may post once more to a gone URL;
// the receiver answers 410 again and the outcome is the same, so startup does
// not wait for the catch-up.
type endpoints struct {
	mu    sync.RWMutex
	gone  map[string]time.Time // WebhookEndpointKey -> since
	gauge prometheus.Gauge
}

func newEndpoints(g prometheus.Gauge) *endpoints {
	return &endpoints{gone: map[string]time.Time{}, gauge: g}
}

func (e *endpoints) goneSince(workspaceID, url string) (time.Time, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	t, ok := e.gone[schemas.WebhookEndpointKey(workspaceID, url)]
	return t, ok
}

func (e *endpoints) set(key string, state schemas.EndpointState, at time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if state == schemas.EndpointGone {
		if _, ok := e.gone[key]; !ok {
			e.gone[key] = at
		}
	} else {
		delete(e.gone, key)
	}
	e.gauge.Set(float64(len(e.gone)))
}

// apply takes one record of the endpoints topic. A tombstone (nil value)
// lifts the mark, as does state active.
func (e *endpoints) apply(r *kgo.Record, log *slog.Logger) {
	if r.Value == nil {
		e.set(string(r.Key), schemas.EndpointActive, time.Time{})
		return
	}
	ev, err := schemas.Decode(r)
	if err != nil || ev.Type != schemas.TypeWebhookEndpoint {
		log.Warn("notifier: ignoring invalid record on the endpoints topic", "partition", r.Partition, "offset", r.Offset, "err", err)
		return
	}
	var ep schemas.WebhookEndpoint
	if err := json.Unmarshal(ev.Data, &ep); err != nil {
		return
	}
	e.set(schemas.WebhookEndpointKey(ep.WorkspaceID, ep.URL), ep.State, ep.ChangedAt)
}

// follow reads the endpoints topic from the start until ctx is done.
func (e *endpoints) follow(ctx context.Context, cl *kgo.Client, log *slog.Logger) {
	for {
		fs := cl.PollFetches(ctx)
		if fs.IsClientClosed() || ctx.Err() != nil {
			return
		}
		failed := false
		fs.EachError(func(t string, p int32, err error) {
			failed = true
			log.Warn("notifier: fetch error on the endpoints topic", "partition", p, "err", err)
		})
		fs.EachRecord(func(r *kgo.Record) { e.apply(r, log) })
		if failed && fs.NumRecords() == 0 {
			if !backoff.Sleep(ctx, time.Second) {
				return
			}
		}
	}
}

// endpointRecord is the state change of one URL for the endpoints topic.
func endpointRecord(ep schemas.WebhookEndpoint) (*kgo.Record, error) {
	return schemas.NewRecord(schemas.TopicWebhookEndpoints, schemas.WebhookEndpointKey(ep.WorkspaceID, ep.URL),
		schemas.Meta{Type: schemas.TypeWebhookEndpoint, Source: eventSource, Subject: ep.CallID, Time: ep.ChangedAt}, ep)
}
