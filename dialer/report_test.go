package dialer

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/dialstream/dialstream/schemas"
)

func reportInput(off int64, ws string, at time.Time, r schemas.AgentReport) input {
	r.At = at
	return input{kind: inReport, offset: off, at: at, callID: testCallID, reportWindow: 10 * time.Minute,
		report: &schemas.AgentReportReceived{CallID: testCallID, WorkspaceID: ws, ReceivedAt: at, Report: r}}
}

func answeredBy(id string, who schemas.AnsweredBy) schemas.AgentReport {
	return schemas.AgentReport{ID: id, Type: schemas.ReportTypeAnsweredBy, AnsweredBy: who}
}

func hangupReport(id string) schemas.AgentReport {
	return schemas.AgentReport{ID: id, Type: schemas.ReportTypeHangup, Hangup: &schemas.ReportHangup{Reason: "goodbye said"}}
}

func resultReport(id string, optOut bool) schemas.AgentReport {
	return schemas.AgentReport{ID: id, Type: schemas.ReportTypeResult, Result: &schemas.ReportResult{
		Disposition: "conversation", Summary: "Ada confirmed", OptOut: optOut,
		Transcript: []schemas.TranscriptLine{{Role: schemas.RoleAgent, Text: "Hello Ada", At: t0}}}}
}

// answeredCall is a call up to answered at t0+4s, its agent's on_machine
// set to policy ("" leaves it out).
func answeredCall(policy string) []input {
	req := requestInput(10)
	if policy != "" {
		req.agent.Settings = map[string]any{"on_machine": policy}
	}
	return []input{req, admitInput(11, t0.Add(time.Second)),
		lkInput(12, lkParticipantJoined, calleeIdentity(testCallID), "", t0.Add(2*time.Second)),
		dialInput(13, dialResult{Result: dialAnswered, StartedAt: t0.Add(time.Second), AnsweredAt: t0.Add(4 * time.Second), FinishedAt: t0.Add(4 * time.Second)})}
}

// Reports are events in the call's sequence, carrying the request's
// metadata, without changing its status; the agent's hangup ends the call
// (ended_by agent, answered_by on ended); a post-call result inside the
// window is one more event, a report after the window and a replayed id
// change nothing.
func TestReportsInTheCallsSequence(t *testing.T) {
	in := append(answeredCall(""),
		reportInput(14, "ws_a", t0.Add(5*time.Second), answeredBy("r1", schemas.AnsweredByHuman)),
		reportInput(15, "ws_a", t0.Add(6*time.Second), answeredBy("r1", schemas.AnsweredByHuman)), // retried
		reportInput(16, "ws_b", t0.Add(6*time.Second), resultReport("x1", false)),                 // another workspace
		reportInput(17, "ws_a", t0.Add(9*time.Second), hangupReport("r2")),
		reportInput(18, "ws_a", t0.Add(5*time.Minute), resultReport("r3", false)),
		reportInput(19, "ws_a", t0.Add(9*time.Second+11*time.Minute), resultReport("r4", false)),
	)
	st, evs, trs := run(t, in...)
	want := []string{"queued", "dialing", "ringing", "answered", "agent_report", "agent_report", "ended:completed", "agent_report"}
	if got := statuses(evs); !reflect.DeepEqual(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i, ev := range evs {
		if ev.Sequence != i+1 || string(ev.Metadata) != `{"crm":1}` || ev.CallbackURL == "" {
			t.Fatalf("event %d: sequence %d, metadata %s, callback %q", i, ev.Sequence, ev.Metadata, ev.CallbackURL)
		}
	}
	if r := evs[4]; r.Report == nil || r.Report.ID != "r1" || r.AnsweredBy != schemas.AnsweredByHuman || r.ReportReceivedAt == nil {
		t.Fatalf("answered_by report event %+v", r)
	}
	end := evs[6]
	if end.EndedBy != schemas.EndedByAgent || end.AnsweredBy != schemas.AnsweredByHuman || end.Reason != "the agent hung up: goodbye said" {
		t.Fatalf("ended %+v", end)
	}
	if trs[7].effects != effHangup {
		t.Fatalf("hangup effects %b", trs[7].effects)
	}
	if post := evs[7]; post.Report.ID != "r3" || post.Report.Result.Summary != "Ada confirmed" {
		t.Fatalf("post-call event %+v", post)
	}
	for i, reason := range map[int]ignoreReason{5: ignoreReportReplay, 6: ignoreWrongWorkspace, 9: ignoreAfterEnd} {
		if trs[i].ignored != reason || trs[i].next != nil {
			t.Errorf("input %d: ignored %q, want %q", i, trs[i].ignored, reason)
		}
	}
	if st.Phase != schemas.StatusEnded || !reflect.DeepEqual(st.ReportIDs, []string{"r1", "r2", "r3"}) {
		t.Fatalf("state %+v", st)
	}
}

// on_machine: hangup ends the call voicemail as soon as the agent reports a
// machine; continue lets the agent leave its message and ends completed on
// its hangup, answered_by machine either way.
func TestVoicemailPolicy(t *testing.T) {
	for _, tc := range []struct {
		policy  string
		want    []string
		outcome schemas.Outcome
	}{
		{"", []string{"queued", "dialing", "ringing", "answered", "agent_report", "ended:voicemail", "agent_report"}, schemas.OutcomeVoicemail},
		{"hangup", []string{"queued", "dialing", "ringing", "answered", "agent_report", "ended:voicemail", "agent_report"}, schemas.OutcomeVoicemail},
		{"continue", []string{"queued", "dialing", "ringing", "answered", "agent_report", "agent_report", "ended:completed"}, schemas.OutcomeCompleted},
	} {
		t.Run(fmt.Sprintf("on_machine=%q", tc.policy), func(t *testing.T) {
			_, evs, _ := run(t, append(answeredCall(tc.policy),
				reportInput(14, "ws_a", t0.Add(5*time.Second), answeredBy("amd", schemas.AnsweredByMachine)),
				reportInput(15, "ws_a", t0.Add(20*time.Second), hangupReport("bye")))...)
			if got := statuses(evs); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("events %v, want %v", got, tc.want)
			}
			for _, ev := range evs {
				if ev.Status == schemas.StatusEnded && (ev.Outcome != tc.outcome || ev.AnsweredBy != schemas.AnsweredByMachine || ev.EndedBy != schemas.EndedByAgent) {
					t.Fatalf("ended %+v", ev)
				}
			}
		})
	}
}

// A transfer asks LiveKit once; the callee leaving then, or the transfer's
// decision, ends the call transferred, whichever comes first. A failed
// transfer lets the call go on and end as usual.
func TestTransferReport(t *testing.T) {
	tr := schemas.AgentReport{ID: "t1", Type: schemas.ReportTypeTransfer, Transfer: &schemas.ReportTransfer{To: "+15550100777"}}
	transferred := input{kind: inDecision, offset: 16, at: t0.Add(8 * time.Second), callID: testCallID,
		dec: &decision{CallID: testCallID, WorkspaceID: "ws_a", Decision: decideTransferred, DecidedAt: t0.Add(8 * time.Second)}}
	left := lkInput(16, lkParticipantLeft, calleeIdentity(testCallID), "CLIENT_INITIATED", t0.Add(8*time.Second))
	for name, last := range map[string]input{"decision first": transferred, "callee left first": left} {
		t.Run(name, func(t *testing.T) {
			_, evs, trs := run(t, append(answeredCall(""), reportInput(14, "ws_a", t0.Add(6*time.Second), tr),
				reportInput(15, "ws_a", t0.Add(7*time.Second), tr), last)...)
			if trs[4].effects != effTransfer || trs[5].ignored != ignoreReportReplay {
				t.Fatalf("transfer effects %b, retry ignored %q", trs[4].effects, trs[5].ignored)
			}
			end := evs[len(evs)-1]
			if end.Outcome != schemas.OutcomeTransferred || end.EndedBy != schemas.EndedByAgent {
				t.Fatalf("ended %+v", end)
			}
		})
	}
	failed := input{kind: inDecision, offset: 15, at: t0.Add(8 * time.Second), callID: testCallID,
		dec: &decision{CallID: testCallID, WorkspaceID: "ws_a", Decision: decideTransferFailed, DecidedAt: t0.Add(8 * time.Second)}}
	_, evs, _ := run(t, append(answeredCall(""), reportInput(14, "ws_a", t0.Add(6*time.Second), tr), failed, left)...)
	if end := evs[len(evs)-1]; end.Outcome != schemas.OutcomeCompleted {
		t.Fatalf("after a failed transfer: ended %+v", end)
	}
}

// An opt-out in a result asks for the number to be listed (the effect);
// a report for a call the dialer does not know changes nothing.
func TestOptOutAndUnknownCall(t *testing.T) {
	_, _, trs := run(t, append(answeredCall(""), reportInput(14, "ws_a", t0.Add(6*time.Second), resultReport("r", true)))...)
	if trs[4].effects != effOptOut {
		t.Fatalf("opt-out effects %b", trs[4].effects)
	}
	if tr := apply(nil, reportInput(1, "ws_a", t0, resultReport("r", false))); tr.ignored != ignoreUnknownCall || tr.next != nil {
		t.Fatalf("unknown call: %+v", tr)
	}
}

// An answered_by report proves the callee answered: the agent sends one only
// after it saw the answer. A dialer that has not yet heard the dial's answer
// (cut from LiveKit's API, the answer late) takes the call as answered
// there, so the agent's hangup ends it completed or voicemail, not
// "canceled before it was answered"; the dial's answer, coming after, is
// stale.
func TestAnswerLearnedFromTheAgent(t *testing.T) {
	req := requestInput(10)
	req.agent.Settings = map[string]any{"on_machine": "hangup"}
	ringing := lkInput(12, lkParticipantJoined, calleeIdentity(testCallID), "", t0.Add(2*time.Second))
	lateAnswer := dialInput(16, dialResult{Result: dialAnswered, StartedAt: t0.Add(time.Second), AnsweredAt: t0.Add(4 * time.Second),
		FinishedAt: t0.Add(9 * time.Second)})

	t.Run("a person, while the dial rings", func(t *testing.T) {
		_, evs, trs := run(t, req, admitInput(11, t0.Add(time.Second)), ringing,
			reportInput(14, "ws_a", t0.Add(5*time.Second), answeredBy("r1", schemas.AnsweredByHuman)),
			reportInput(15, "ws_a", t0.Add(8*time.Second), hangupReport("r2")), lateAnswer)
		want := []string{"queued", "dialing", "ringing", "answered", "agent_report", "agent_report", "ended:completed"}
		if got := statuses(evs); !reflect.DeepEqual(got, want) {
			t.Fatalf("events %v, want %v", got, want)
		}
		if a := evs[3]; !a.OccurredAt.Equal(t0.Add(5 * time.Second)) {
			t.Errorf("answered at %s, want the report's time", a.OccurredAt)
		}
		if end := evs[6]; end.AnsweredBy != schemas.AnsweredByHuman || end.EndedBy != schemas.EndedByAgent {
			t.Errorf("ended %+v", end)
		}
		if trs[len(trs)-1].ignored != ignoreAfterEnd {
			t.Errorf("the late answer: %+v, want ignored after the end", trs[len(trs)-1])
		}
	})
	t.Run("a machine, before any ringing", func(t *testing.T) {
		_, evs, trs := run(t, req, admitInput(11, t0.Add(time.Second)),
			reportInput(14, "ws_a", t0.Add(5*time.Second), answeredBy("r1", schemas.AnsweredByMachine)))
		want := []string{"queued", "dialing", "ringing", "answered", "agent_report", "ended:voicemail"}
		if got := statuses(evs); !reflect.DeepEqual(got, want) {
			t.Fatalf("events %v, want %v", got, want)
		}
		for i, ev := range evs {
			if ev.Sequence != i+1 {
				t.Fatalf("event %d has sequence %d", i, ev.Sequence)
			}
		}
		if trs[len(trs)-1].effects != effHangup {
			t.Errorf("effects %b, want the hangup", trs[len(trs)-1].effects)
		}
	})
}
