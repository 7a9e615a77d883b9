package dialer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/schemas"
)

// loadState reads partition p of the state topic from its start to its high
// watermark: the last state of every call whose commands live in partition p
// of the requested topic. The previous owner wrote every state it acted on
// before giving the partition up (acks=all), so they are all below the
// watermark read after the assignment.
func (d *dialer) loadState(ctx context.Context, p int32) (map[string]*callState, int, error) {
	adm := kadm.NewClient(d.prod)
	starts, err := adm.ListStartOffsets(ctx, schemas.TopicState)
	if err != nil {
		return nil, 0, fmt.Errorf("list start offsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, schemas.TopicState)
	if err != nil {
		return nil, 0, fmt.Errorf("list end offsets: %w", err)
	}
	so, ok1 := starts.Lookup(schemas.TopicState, p)
	eo, ok2 := ends.Lookup(schemas.TopicState, p)
	if !ok1 || !ok2 || so.Err != nil || eo.Err != nil {
		return nil, 0, fmt.Errorf("offsets of %s/%d: %v %v", schemas.TopicState, p, so.Err, eo.Err)
	}
	calls := map[string]*callState{}
	if eo.Offset <= so.Offset {
		return calls, 0, nil
	}
	opts := append(append([]kgo.Opt{}, d.kafkaOpts...),
		kgo.ClientID(d.cfg.Kafka.ClientID+"-state-loader"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{schemas.TopicState: {p: kgo.NewOffset().At(so.Offset)}}),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, 0, err
	}
	defer cl.Close()
	n := 0
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.Canceled) {
				ferr = err
			}
		})
		if ferr != nil {
			return nil, 0, ferr
		}
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			n++
			id := string(r.Key)
			if r.Value == nil {
				delete(calls, id)
			} else {
				calls[id] = d.decodeState(id, r.Value)
			}
			if r.Offset >= eo.Offset-1 {
				done = true
			}
		})
		if done {
			return calls, n, nil
		}
	}
}

// decodeState parses a state record. One that cannot be parsed still names
// a call: it is kept as ended (nothing is known about it, so nothing may dial
// it again) and reported.
func (d *dialer) decodeState(id string, b []byte) *callState {
	var st callState
	if err := json.Unmarshal(b, &st); err != nil || st.CallID != id || st.Phase == "" {
		d.log.Error("dialer: unreadable call state; keeping the call as ended so it is never dialed again", "call_id", id, "workspace_id", "unknown", "err", err)
		return &callState{CallID: id, WorkspaceID: "unknown", Phase: schemas.StatusEnded, Outcome: schemas.OutcomeFailed, Sequence: 1}
	}
	if st.Phase == schemas.StatusEnded {
		st.strip()
	}
	return &st
}
