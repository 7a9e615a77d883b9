package recorder

import (
	"context"
	"encoding/json"
	"regexp"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/schemas"
)

// result labels dialstream_recorder_records_total.
type result string

const (
	resultWritten result = "written" // changed the records
	resultSkipped result = "skipped" // not for the records, a replay, a foreign or expired call
	resultInvalid result = "invalid" // unreadable: counted and passed over
)

var results = []result{resultWritten, resultSkipped, resultInvalid}

var callIDPattern = regexp.MustCompile(`^[0-9a-f]{24}$`)

// eventTypes maps a lifecycle event's CloudEvent type to its status.
var eventTypes = func() map[string]schemas.Status {
	m := map[string]schemas.Status{}
	for _, s := range schemas.EventStatuses {
		m[s.Type()] = s
	}
	return m
}()

// apply writes what r says into w. A record that cannot be read is
// counted and passed over, never retried: the records must never stall on
// one record, and the services that own these topics dead-letter bad
// records themselves. Requests and cancels (written by anyone who may
// write the requested topic) are checked against their schema, as the
// dialer checks them, and taken only for workspaces of the registry, as
// ingest takes them. Events and delivery attempts are written only by the
// dialer and the notifier, after validation; they get a cheaper structural
// check. The error is the database's: the batch fails whole.
func apply(ctx context.Context, w *callrecords.Writer, reg *registry.Registry, r *kgo.Record) (result, error) {
	typ := kafkax.Header(r, schemas.HeaderType)
	known := func(ws string) bool { _, ok := reg.Workspace(ws); return ok }
	switch r.Topic {
	case schemas.TopicRequested:
		if typ != schemas.TypeCallRequested && typ != schemas.TypeCallCancel {
			return resultSkipped, nil // the dialer's own commands
		}
		ev, err := schemas.Decode(r)
		if err != nil {
			return resultInvalid, nil
		}
		if typ == schemas.TypeCallCancel {
			var c schemas.CallCancel
			if json.Unmarshal(ev.Data, &c) != nil || string(r.Key) != c.CallID {
				return resultInvalid, nil
			}
			return written(w.PutCancel(ctx, &c, ev.Data))
		}
		var req schemas.CallRequested
		if json.Unmarshal(ev.Data, &req) != nil || string(r.Key) != req.CallID {
			return resultInvalid, nil
		}
		if !known(req.WorkspaceID) {
			return resultSkipped, nil
		}
		return written(w.PutRequest(ctx, &req, ev.Data, r.Partition, r.Offset, false))
	case schemas.TopicEvents:
		if s, _ := schemas.SchemaFor(typ); s == schemas.SchemaCampaignEvent {
			return resultSkipped, nil // a campaign's own event: not a call's
		}
		id := kafkax.Header(r, schemas.HeaderID)
		status, ok := eventTypes[typ]
		if id == "" || !ok || len(id) > 256 {
			return resultInvalid, nil
		}
		var ev schemas.CallEvent
		if json.Unmarshal(r.Value, &ev) != nil || !callIDPattern.MatchString(ev.CallID) || string(r.Key) != ev.CallID ||
			ev.WorkspaceID == "" || ev.Sequence < 1 || ev.Status != status || ev.OccurredAt.IsZero() {
			return resultInvalid, nil
		}
		if !known(ev.WorkspaceID) {
			return resultSkipped, nil
		}
		return written(w.PutEvent(ctx, &ev, id, r.Value, r.Headers))
	case schemas.TopicWebhookDeliveries:
		if typ != schemas.TypeWebhookAttempt {
			return resultInvalid, nil
		}
		var a schemas.WebhookAttempt
		if json.Unmarshal(r.Value, &a) != nil || !callIDPattern.MatchString(a.CallID) || a.WorkspaceID == "" ||
			a.EventID == "" || a.AttemptedAt.IsZero() {
			return resultInvalid, nil
		}
		if s, _ := schemas.SchemaFor(a.EventType); s == schemas.SchemaCampaignEvent || !known(a.WorkspaceID) {
			// A campaign webhook's attempt names the campaign in call_id:
			// recording it would make a call of the campaign.
			return resultSkipped, nil
		}
		return written(w.PutAttempt(ctx, &a, r.Value, r.Partition, r.Offset))
	}
	return resultSkipped, nil
}

func written(changed bool, err error) (result, error) {
	if err != nil {
		return "", err
	}
	if changed {
		return resultWritten, nil
	}
	return resultSkipped, nil
}
