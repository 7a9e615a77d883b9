package recorder

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"

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
		if typ == schemas.TypeCallCancel {
			var c schemas.CallCancel
			ev, err := schemas.DecodeInto(r, &c)
			if err != nil || string(r.Key) != c.CallID {
				return resultInvalid, nil
			}
			return written(w.PutCancel(ctx, &c, ev.Data))
		}
		var req schemas.CallRequested
		ev, err := schemas.DecodeInto(r, &req)
		if err != nil || string(r.Key) != req.CallID {
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
	case schemas.TopicCampaignCommands:
		if typ != schemas.TypeCallScheduled {
			return resultSkipped, nil // the scheduler's other commands: its state says what they did
		}
		ev, err := schemas.Decode(r)
		if err != nil {
			return resultInvalid, nil
		}
		var sc schemas.CallScheduled
		if json.Unmarshal(ev.Data, &sc) != nil || string(r.Key) != sc.Request.CallID {
			return resultInvalid, nil
		}
		if !known(sc.Request.WorkspaceID) {
			return resultSkipped, nil
		}
		return written(w.PutScheduled(ctx, &sc, ev.Data, r.Partition, r.Offset))
	case schemas.TopicCampaignState:
		return applyState(ctx, w, known, typ, r)
	}
	return resultSkipped, nil
}

// applyState copies one record of the scheduler's compacted state topic:
// the record's key says what it is the state of (the type must agree), a
// later record replaces the row, a tombstone deletes it. Only the
// scheduler writes the topic, after validating what it writes, so the
// check is structural, as for events: 100,000 contacts uploaded at once
// are as many records here.
func applyState(ctx context.Context, w *callrecords.Writer, known func(string) bool, typ string, r *kgo.Record) (result, error) {
	kind, rest, _ := strings.Cut(string(r.Key), "/")
	tombstone := r.Value == nil
	switch kind {
	case "c":
		if !callIDPattern.MatchString(rest) {
			return resultInvalid, nil
		}
		if tombstone {
			return written(w.DeleteCampaign(ctx, rest))
		}
		var st schemas.CampaignState
		if typ != schemas.TypeCampaignState || json.Unmarshal(r.Value, &st) != nil || st.Kind != schemas.StateKindCampaign ||
			st.Campaign.CampaignID != rest || st.Campaign.WorkspaceID == "" || st.Status == "" || st.UpdatedAt.IsZero() {
			return resultInvalid, nil
		}
		if !known(st.Campaign.WorkspaceID) {
			return resultSkipped, nil
		}
		return written(w.PutCampaign(ctx, &st, r.Value))
	case "k":
		campaign, contact, _ := strings.Cut(rest, "/")
		if !callIDPattern.MatchString(campaign) || contact == "" {
			return resultInvalid, nil
		}
		if tombstone {
			return written(w.DeleteContact(ctx, campaign, contact))
		}
		var st schemas.ContactState
		if typ != schemas.TypeContactState || json.Unmarshal(r.Value, &st) != nil || st.Kind != schemas.StateKindContact ||
			st.CampaignID != campaign || st.Contact.ContactID != contact || st.WorkspaceID == "" || st.Status == "" ||
			st.UpdatedAt.IsZero() {
			return resultInvalid, nil
		}
		if !known(st.WorkspaceID) {
			return resultSkipped, nil
		}
		return written(w.PutContact(ctx, &st, r.Value))
	case "s":
		// A scheduled call's own state: its call.scheduled record made the
		// call, and its release (or its cancel: a release with
		// canceled_at, ended by the dialer) comes on the call's topics.
		return resultSkipped, nil
	}
	return resultInvalid, nil
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
