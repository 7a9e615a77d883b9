package dialer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/schemas"
)

var callIDRE = regexp.MustCompile(`^[0-9a-f]{24}$`)

// decode turns a record into a command for one call. A record that cannot be
// a command comes back as a DLQ record; if it may have been a call request,
// also as a rejection, so the client hears about it.
func (o *partitionOwner) decode(rec *kgo.Record) (*input, *kgo.Record) {
	typ := kafkax.Header(rec, schemas.HeaderType)
	internal := typ == TypeDialResult || typ == TypeLiveKitEvent || typ == TypeDecision
	ev, err := schemas.Decode(rec)
	if err != nil {
		class := classSchema
		var de *schemas.DecodeError
		var fields []schemas.FieldError
		if errors.As(err, &de) {
			class, fields = de.Class, de.Fields
		}
		if typ == schemas.TypeCallCancel || typ == schemas.TypeAgentReportReceived || internal {
			return nil, o.dlq(rec, class, err.Error())
		}
		return o.reject(rec, class, err.Error(), fields)
	}
	in := &input{offset: rec.Offset, at: rec.Timestamp, maxAge: o.d.cfg.EndedRetention}
	var data any
	switch ev.Type {
	case schemas.TypeCallRequested:
		r := &schemas.CallRequested{}
		in.kind, in.req, data = inRequested, r, r
	case schemas.TypeCallCancel:
		c := &schemas.CallCancel{}
		in.kind, in.cancel, data = inCancel, c, c
	case schemas.TypeAgentReportReceived:
		x := &schemas.AgentReportReceived{}
		in.kind, in.report, data = inReport, x, x
		in.reportWindow = o.d.cfg.AgentReportWindow
	case TypeDialResult:
		x := &dialResult{}
		in.kind, in.dial, data = inDialResult, x, x
	case TypeLiveKitEvent:
		x := &livekitEvent{}
		in.kind, in.lk, data = inLiveKit, x, x
	case TypeDecision:
		x := &decision{}
		in.kind, in.dec, data = inDecision, x, x
	default:
		return o.reject(rec, classUnexpectedType, fmt.Sprintf("%s is not a command type of %s", ev.Type, schemas.TopicRequested),
			[]schemas.FieldError{{Field: "header:" + schemas.HeaderType, Message: "not a command type"}})
	}
	if err := json.Unmarshal(ev.Data, data); err != nil {
		if in.kind == inRequested {
			return o.reject(rec, classSchema, err.Error(), nil)
		}
		return nil, o.dlq(rec, classBadCommand, err.Error())
	}
	switch in.kind {
	case inRequested:
		in.callID = in.req.CallID
	case inCancel:
		in.callID = in.cancel.CallID
	case inReport:
		in.callID = in.report.CallID
	case inDialResult:
		in.callID = in.dial.CallID
	case inLiveKit:
		in.callID = in.lk.CallID
	case inDecision:
		in.callID = in.dec.CallID
	}
	if string(rec.Key) != in.callID {
		reason := fmt.Sprintf("record key %q must equal data.call_id %q, so the call's cancel and follow-up commands reach the same partition", schemas.Clip(string(rec.Key), 64), in.callID)
		if in.kind != inRequested {
			return nil, o.dlq(rec, classKey, reason)
		}
		return o.reject(rec, classKey, reason, []schemas.FieldError{{Field: "key", Message: "must equal /call_id"}})
	}
	if in.kind == inRequested {
		r := in.req
		if _, ok := o.d.reg.Workspace(r.WorkspaceID); !ok {
			return o.reject(rec, classUnknownWorkspace, "unknown workspace "+r.WorkspaceID,
				[]schemas.FieldError{{Field: "/workspace_id", Message: "unknown workspace"}})
		}
		a, ok := o.d.reg.Agent(r.WorkspaceID, r.CallAgentID)
		if !ok {
			return o.reject(rec, classUnknownAgent, fmt.Sprintf("workspace %s has no agent %s", r.WorkspaceID, r.CallAgentID),
				[]schemas.FieldError{{Field: "/call_agent_id", Message: "no such agent in this workspace"}})
		}
		in.agent = a
	}
	return in, nil
}

func (o *partitionOwner) dlq(rec *kgo.Record, class, reason string) *kgo.Record {
	id, ws := o.recordCall(rec)
	return o.deadLetter(rec, class, reason, id, ws)
}

// recordCall names the call a record that could not be applied is about,
// as far as it can be told: for the log line that says what happened to it.
func (o *partitionOwner) recordCall(rec *kgo.Record) (callID, workspaceID string) {
	var body struct {
		CallID      string `json:"call_id"`
		WorkspaceID string `json:"workspace_id"`
	}
	_ = json.Unmarshal(rec.Value, &body)
	callID = body.CallID
	if !callIDRE.MatchString(callID) {
		callID = string(rec.Key)
	}
	if !callIDRE.MatchString(callID) {
		return "unknown", "unknown"
	}
	if st := o.calls[callID]; st != nil {
		return callID, st.WorkspaceID
	}
	if _, ok := o.d.reg.Workspace(body.WorkspaceID); ok {
		return callID, body.WorkspaceID
	}
	return callID, "unknown"
}

// deadLetter builds the DLQ record of rec, which is about call id of
// workspace ws (as far as can be told: "unknown" otherwise).
func (o *partitionOwner) deadLetter(rec *kgo.Record, class, reason, id, ws string) *kgo.Record {
	r := kafkax.DLQRecord(rec, schemas.TopicRequestsDLQ, class, schemas.Clip(reason, 2048), 1)
	r.Partition = rec.Partition
	o.d.m.dlq.WithLabelValues(class).Inc()
	o.d.m.rejected.WithLabelValues(class).Inc()
	o.log.WarnContext(obs.SpanContextOnly(ctxOf(rec)), "dialer: record dead-lettered", "call_id", id, "workspace_id", ws,
		"offset", rec.Offset, "class", class, "reason", schemas.Clip(reason, 512))
	return r
}

// ctxOf is a record's Context, never nil.
func ctxOf(rec *kgo.Record) context.Context {
	if rec.Context == nil {
		return context.Background()
	}
	return rec.Context
}

// reject builds the rejection of a record that may have been a call request:
// a DLQ record, and a rejected call under the call id the record names (its
// data, else its key, else one derived from where it sits in the log, so a
// replay derives the same).
func (o *partitionOwner) reject(rec *kgo.Record, class, reason string, fields []schemas.FieldError) (*input, *kgo.Record) {
	var body map[string]json.RawMessage
	_ = json.Unmarshal(rec.Value, &body)
	str := func(k string) string {
		var s string
		_ = json.Unmarshal(body[k], &s)
		return s
	}
	id := str("call_id")
	if !callIDRE.MatchString(id) {
		id = string(rec.Key)
	}
	if !callIDRE.MatchString(id) {
		sum := sha256.Sum256(fmt.Appendf(nil, "%s/%d/%d", rec.Topic, rec.Partition, rec.Offset))
		id = hex.EncodeToString(sum[:12])
	}
	rj := &rejection{class: class, reason: reason, fields: fields, workspaceID: "unknown"}
	if ws := str("workspace_id"); ws != "" {
		if _, ok := o.d.reg.Workspace(ws); ok {
			rj.workspaceID = ws
			if cb := str("callback_url"); len(cb) <= 2048 && callbackRE.MatchString(cb) {
				rj.callbackURL = cb
			}
			if md := body["metadata"]; len(md) > 0 && md[0] == '{' && json.Valid(md) {
				rj.metadata = md
			}
		}
	}
	return &input{kind: inRejected, offset: rec.Offset, at: rec.Timestamp, callID: id, rej: rj}, o.deadLetter(rec, class, reason, id, rj.workspaceID)
}

var callbackRE = regexp.MustCompile(`^https?://[^\s]+$`)
