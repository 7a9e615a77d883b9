package dialer

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/livekit/protocol/livekit"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/dialstream/dialstream/internal/compliance"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/schemas"
)

// The agent's reports. Ingest's report endpoint checks an agent's token and
// body and writes the report to the call's partition
// (schemas.TypeAgentReportReceived); the partition's owner applies it here,
// in log order with everything else that happens to the call, so a report
// and the callee hanging up cannot be told apart by two replicas in two
// different orders. Each report becomes one dialstream.call.agent_report.v1
// event with the call's next sequence, carrying the request's metadata; a
// hangup, a transfer or a machine answering under on_machine: hangup also
// acts on the call.

// maxReportsPerCall bounds the report ids a call remembers, and so its
// state. Later reports are counted and dropped: an agent that reports more
// than this on one call is broken.
const maxReportsPerCall = 100

func applyReport(st *callState, in input) transition {
	r := in.report
	switch {
	case st == nil:
		return transition{ignored: ignoreUnknownCall}
	case r.WorkspaceID != st.WorkspaceID:
		return transition{ignored: ignoreWrongWorkspace}
	case slices.Contains(st.ReportIDs, r.Report.ID):
		return transition{ignored: ignoreReportReplay}
	case len(st.ReportIDs) >= maxReportsPerCall:
		return transition{ignored: ignoreTooManyReports}
	case st.Phase == schemas.StatusEnded && in.reportWindow > 0 && r.ReceivedAt.After(st.EndedAt.Add(in.reportWindow)):
		return transition{ignored: ignoreAfterEnd}
	}
	at := r.ReceivedAt
	next := st.clone()
	next.AppliedOffset = in.offset
	next.ReportIDs = append(next.ReportIDs, r.Report.ID)
	rep := r.Report
	if rep.Type == schemas.ReportTypeAnsweredBy && st.Phase != schemas.StatusEnded {
		next.AnsweredBy = rep.AnsweredBy
	}
	var evs []schemas.CallEvent
	if rep.Type == schemas.ReportTypeAnsweredBy && (st.Phase == schemas.StatusDialing || st.Phase == schemas.StatusRinging) {
		// The agent tells who answered only once it has seen the callee
		// answer, so the call is answered, whatever the dial has said
		// yet: a dialer cut from LiveKit's API (or whose dial's answer is
		// late) learns it from the agent first. Without this, the agent's
		// hangup ended such a call "canceled" as if it never rang. The
		// dial's answered result, when it comes, is then stale.
		if st.Phase == schemas.StatusDialing {
			next.Phase, next.RingingAt = schemas.StatusRinging, at
			next.Sequence++
			evs = append(evs, next.event(schemas.StatusRinging, at))
		}
		next.Phase, next.AnsweredAt = schemas.StatusAnswered, at
		next.Sequence++
		evs = append(evs, next.event(schemas.StatusAnswered, at))
	}
	next.Sequence++
	ev := next.event(schemas.StatusAgentReport, at)
	ev.Report, ev.ReportReceivedAt = &rep, &at
	if rep.Type == schemas.ReportTypeAnsweredBy {
		ev.AnsweredBy = rep.AnsweredBy
	}
	tr := transition{next: next, events: append(evs, ev)}

	switch rep.Type {
	case schemas.ReportTypeAnsweredBy:
		if next.Phase == schemas.StatusAnswered && rep.AnsweredBy == schemas.AnsweredByMachine && onMachine(st) == schemas.OnMachineHangup {
			tr.events = append(tr.events, next.end(at, schemas.OutcomeVoicemail, schemas.EndedByAgent,
				"a machine answered and the agent's on_machine policy is hangup"))
			tr.effects |= effHangup
		}
	case schemas.ReportTypeResult:
		if rep.Result != nil && rep.Result.OptOut && st.To != "" {
			tr.effects |= effOptOut
		}
	case schemas.ReportTypeHangup:
		if !st.live() && st.Phase != schemas.StatusQueued {
			break
		}
		outcome, reason := schemas.OutcomeCompleted, "the agent hung up"
		switch {
		case st.Phase != schemas.StatusAnswered:
			outcome, reason = schemas.OutcomeCanceled, "the agent ended the call before it was answered"
		case next.AnsweredBy == schemas.AnsweredByMachine && onMachine(st) == schemas.OnMachineHangup:
			outcome, reason = schemas.OutcomeVoicemail, "a machine answered and the agent hung up (on_machine: hangup)"
		}
		if rep.Hangup != nil && rep.Hangup.Reason != "" {
			reason += ": " + rep.Hangup.Reason
		}
		tr.events = append(tr.events, next.end(at, outcome, schemas.EndedByAgent, reason))
		tr.effects |= effHangup
	case schemas.ReportTypeTransfer:
		if st.Phase == schemas.StatusAnswered && st.TransferTo == "" && rep.Transfer != nil {
			next.TransferTo = rep.Transfer.To
			tr.effects |= effTransfer
		}
	}
	return tr
}

// onMachine is the call's agent's policy when a machine answers.
func onMachine(st *callState) schemas.OnMachine {
	if st.Agent != nil {
		if v, _ := st.Agent.Settings["on_machine"].(string); v == string(schemas.OnMachineContinue) {
			return schemas.OnMachineContinue
		}
	}
	return schemas.OnMachineHangup
}

func transferReason(to string) string {
	return "the agent transferred the callee to " + maskedOrEmpty(to)
}

func maskedOrEmpty(n string) string {
	if n == "" {
		return "another number"
	}
	return obs.MaskPhone(n)
}

// transfer asks LiveKit to move the callee to st.TransferTo (a SIP REFER
// through the outbound trunk) and writes how it went to the call's
// partition as a decision, so the call ends transferred (or goes on) in log
// order. It is never retried: a REFER sent twice could ring the target
// twice.
func (d *dialer) transfer(parent context.Context, p int32, st *callState) {
	d.liveKitTask(parent, "transfer", st, func(ctx context.Context, span trace.Span) {
		identity := st.ParticipantIdentity
		if identity == "" {
			identity = calleeIdentity(st.CallID)
		}
		dec := decision{CallID: st.CallID, WorkspaceID: st.WorkspaceID, Decision: decideTransferred}
		_, err := d.lk.TransferSIPParticipant(ctx, &livekit.TransferSIPParticipantRequest{
			RoomName: st.RoomName, ParticipantIdentity: identity, TransferTo: "tel:" + st.TransferTo,
		})
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
			d.log.WarnContext(ctx, "dialer: transfer failed; the call goes on", "call_id", st.CallID, "workspace_id", st.WorkspaceID, "err", err)
			dec.Decision, dec.Reason = decideTransferFailed, schemas.Clip("transfer: "+err.Error(), 512)
		}
		d.m.transfers.WithLabelValues(string(dec.Decision)).Inc()
		dec.DecidedAt = time.Now().UTC()
		rec, err := commandRecord(TypeDecision, st.CallID, p, dec.DecidedAt, dec)
		if err == nil {
			err = d.writeCommand(d.prodCtx, rec, st)
		}
		if err != nil {
			d.log.ErrorContext(ctx, "dialer: transfer result not written; the callee leaving ends the call", "call_id", st.CallID, "workspace_id", st.WorkspaceID, "err", err)
		}
	})
}

// optOut puts the call's number on its workspace's do-not-call list, with
// the call that asked for it. Writing it twice (a replayed report) writes
// the same entry again: the topic is compacted by workspace and number.
func (d *dialer) optOut(parent context.Context, st *callState) {
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		ctx := trace.ContextWithSpanContext(d.prodCtx, trace.SpanContextFromContext(parent))
		s := schemas.Suppression{WorkspaceID: st.WorkspaceID, Number: st.To, Reason: schemas.ReasonOptOut,
			Source: schemas.SourceAgent, CallID: st.CallID, AddedAt: time.Now().UTC().Truncate(time.Second)}
		rec, err := compliance.SuppressionRecord(s, ceSource)
		if err == nil {
			err = d.writeCommand(ctx, rec, st)
		}
		if err != nil {
			d.log.ErrorContext(ctx, "dialer: opt-out not written to the do-not-call list", "call_id", st.CallID, "workspace_id", st.WorkspaceID, "err", err)
			return
		}
		d.m.optOuts.Inc()
		d.log.InfoContext(ctx, "dialer: number put on the do-not-call list at the agent's report", "call_id", st.CallID,
			"workspace_id", st.WorkspaceID, "to", obs.MaskPhone(st.To))
	}()
}

// agentDispatch is the agent's dispatch metadata for st's call
// (agent.dispatch.v1), validated against its schema.
func (d *dialer) agentDispatch(st *callState, now time.Time) (string, error) {
	a := st.Agent
	disp := schemas.AgentDispatch{
		CallID: st.CallID, WorkspaceID: st.WorkspaceID, CallAgentID: st.CallAgentID, Room: st.RoomName,
		To: st.To, From: a.CallerID, DynamicVariables: st.DynamicVariables, Metadata: st.Metadata, Settings: a.Settings,
	}
	if d.cfg.AgentReportURL != "" {
		exp := schemas.ReportTokenExpiry(now, a.ringingTimeout()+dialOverhead, a.maxCallDuration(), d.cfg.AgentReportWindow)
		disp.Report = &schemas.ReportChannel{
			URL:       fmt.Sprintf("%s/v1/agent/calls/%s/reports", d.cfg.AgentReportURL, st.CallID),
			Token:     schemas.MintReportToken(d.cfg.AgentReportSecrets[0], st.CallID, st.WorkspaceID, exp),
			ExpiresAt: exp.UTC(),
		}
	}
	return disp.Encode()
}
