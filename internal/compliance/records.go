package compliance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/schemas"
)

// AttemptHistory is how far back the attempt history is read at start: the
// weekly cap's window, plus an hour for attempts whose record was written a
// little after they were decided. The events topic must keep at least this
// much (KAFKA_TOPIC_RETENTION, default 8 days for this reason; with 7 days
// the oldest hour of the week could be missing from a fresh dialer's counts).
const AttemptHistory = week + time.Hour

// SuppressionRecord builds the record that puts s on its workspace's list,
// checked against the schema. source is the CloudEvents source of the
// producer ("/dialstream/ingest").
func SuppressionRecord(s schemas.Suppression, source string) (*kgo.Record, error) {
	return schemas.NewRecord(schemas.TopicSuppressions, schemas.SuppressionKey(s.WorkspaceID, s.Number),
		schemas.Meta{Type: schemas.TypeSuppression, Source: source, Time: s.AddedAt}, s)
}

// RemovalRecord builds the tombstone that takes a number off a workspace's
// list (and, once compacted, out of Kafka).
func RemovalRecord(workspaceID, number string) *kgo.Record {
	return &kgo.Record{Topic: schemas.TopicSuppressions, Key: []byte(schemas.SuppressionKey(workspaceID, number))}
}

// Apply folds one record of schemas.TopicSuppressions into the table: a
// listing replaces the number's entry, a tombstone removes it.
func (t *Table) Apply(r *kgo.Record) error {
	ws, number, ok := bytes.Cut(r.Key, []byte(" "))
	if !ok || len(ws) == 0 {
		return fmt.Errorf("suppression record key %q is not <workspace> <number>", r.Key)
	}
	if r.Value == nil {
		if _, ok := numberKey(string(number)); !ok {
			return fmt.Errorf("suppression tombstone key %q: %w", r.Key, ErrBadNumber)
		}
		t.Remove(string(ws), string(number))
		return nil
	}
	ev, err := schemas.Decode(r)
	if err != nil {
		return fmt.Errorf("suppression record: %w", err)
	}
	var s schemas.Suppression
	if err := json.Unmarshal(ev.Data, &s); err != nil {
		return fmt.Errorf("suppression record: %w", err)
	}
	if s.WorkspaceID != string(ws) || s.Number != string(number) {
		return fmt.Errorf("suppression record key %q does not match its data (%s %s)", r.Key, s.WorkspaceID, s.Number)
	}
	return t.Add(s.WorkspaceID, s.Number, s.Reason, s.AddedAt)
}

// FollowSuppressions returns a Follower that loads schemas.TopicSuppressions
// whole into t and marks t ready once caught up. opts are the service's
// Kafka client options.
func FollowSuppressions(opts []kgo.Opt, t *Table, log *slog.Logger) (*Follower, error) {
	return NewFollower(opts, FollowerConfig{Topic: schemas.TopicSuppressions, Apply: t.Apply, CaughtUp: t.SetReady, Logger: log})
}

// FollowAttempts returns a Follower that reads the last AttemptHistory of
// schemas.TopicEvents into a and marks a ready once caught up.
func FollowAttempts(opts []kgo.Opt, a *Attempts, log *slog.Logger) (*Follower, error) {
	return NewFollower(opts, FollowerConfig{Topic: schemas.TopicEvents, Since: AttemptHistory, Apply: a.ApplyEvent, CaughtUp: a.SetReady, Logger: log})
}

// ApplyEvent folds one record of schemas.TopicEvents into the history: a
// dialing event is an attempt, whoever placed it and however the call
// arrived (HTTP, Kafka, a campaign); an ended event with a compliance
// outcome takes its call's attempt back out, since such a call never rang
// (it only matters if a dialer refuses after writing dialing). Other events
// are ignored.
func (a *Attempts) ApplyEvent(r *kgo.Record) error {
	typ := kafkax.Header(r, schemas.HeaderType)
	if typ != schemas.TypeCallDialing && typ != schemas.TypeCallEnded {
		return nil
	}
	var ev struct {
		CallID      string    `json:"call_id"`
		WorkspaceID string    `json:"workspace_id"`
		To          string    `json:"to"`
		OccurredAt  time.Time `json:"occurred_at"`
		Outcome     Outcome   `json:"outcome"`
	}
	if err := json.Unmarshal(r.Value, &ev); err != nil {
		return fmt.Errorf("%s event: %w", typ, err)
	}
	if typ == schemas.TypeCallEnded && !slices.Contains(Outcomes, ev.Outcome) {
		return nil
	}
	if ev.CallID == "" || ev.WorkspaceID == "" || ev.To == "" {
		return errors.New(typ + " event without call_id, workspace_id or to")
	}
	if typ == schemas.TypeCallDialing {
		a.Record(ev.WorkspaceID, ev.To, ev.CallID, ev.OccurredAt)
	} else {
		a.Forget(ev.WorkspaceID, ev.To, ev.CallID)
	}
	return nil
}
