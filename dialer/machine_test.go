package dialer

import (
	"reflect"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/schemas"
)

const testCallID = "f9e8d7c6b5a4f3e2d1c0b9a8"

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func testAgent() *registry.Agent {
	return &registry.Agent{ID: "agent_a", Workspace: "ws_a", LiveKitAgentName: "lk-agent", SIPTrunkID: "ST_x",
		CallerID: "+15550109999", RingingTimeout: 20 * time.Second, MaxCallDuration: time.Minute,
		Settings: map[string]any{"voice": "alloy"}}
}

func requestInput(off int64) input {
	return input{kind: inRequested, offset: off, at: t0, callID: testCallID, agent: testAgent(),
		req: &schemas.CallRequested{CallID: testCallID, WorkspaceID: "ws_a", To: "+15550100001", CallAgentID: "agent_a",
			DynamicVariables: map[string]string{"firstName": "Ada"}, Metadata: []byte(`{"crm":1}`),
			CallbackURL: "https://example.com/cb", RequestedAt: t0}}
}

func admitInput(off int64, at time.Time) input {
	return input{kind: inDecision, offset: off, at: at, callID: testCallID,
		dec: &decision{CallID: testCallID, WorkspaceID: "ws_a", Decision: decideAdmit, DecidedAt: at}}
}

func lkInput(off int64, event, identity, reason string, at time.Time) input {
	return input{kind: inLiveKit, offset: off, at: at, callID: testCallID, lk: &livekitEvent{
		CallID: testCallID, WorkspaceID: "ws_a", Event: event, ParticipantIdentity: identity, DisconnectReason: reason, OccurredAt: at}}
}

func dialInput(off int64, d dialResult) input {
	d.CallID, d.WorkspaceID = testCallID, "ws_a"
	return input{kind: inDialResult, offset: off, at: d.FinishedAt, callID: testCallID, dial: &d}
}

func cancelInput(off int64, ws string, at time.Time) input {
	return input{kind: inCancel, offset: off, at: at, callID: testCallID,
		cancel: &schemas.CallCancel{CallID: testCallID, WorkspaceID: ws, RequestedAt: at}}
}

// run applies inputs in order and returns every event and the final state.
func run(t *testing.T, ins ...input) (*callState, []schemas.CallEvent, []transition) {
	t.Helper()
	var st *callState
	var evs []schemas.CallEvent
	var trs []transition
	for _, in := range ins {
		tr := apply(st, in)
		trs = append(trs, tr)
		if tr.next != nil {
			mustValidState(t, tr.next)
			st = tr.next
		}
		for _, ev := range tr.events {
			mustValidEvent(t, ev)
		}
		evs = append(evs, tr.events...)
	}
	return st, evs, trs
}

func mustValidEvent(t *testing.T, ev schemas.CallEvent) {
	t.Helper()
	if _, err := schemas.NewRecord(schemas.TopicEvents, ev.CallID, schemas.Meta{Type: ev.Status.Type(), Source: "/t"}, ev); err != nil {
		t.Fatalf("event %s #%d invalid: %v", ev.Status, ev.Sequence, err)
	}
}

func mustValidState(t *testing.T, st *callState) {
	t.Helper()
	if _, err := stateRecord(st, 0, t0); err != nil {
		t.Fatalf("state %s invalid: %v", st.Phase, err)
	}
}

func statuses(evs []schemas.CallEvent) []string {
	var out []string
	for _, ev := range evs {
		s := string(ev.Status)
		if ev.Outcome != "" {
			s += ":" + string(ev.Outcome)
		}
		out = append(out, s)
	}
	return out
}

func TestCompletedCallLifecycle(t *testing.T) {
	id := calleeIdentity(testCallID)
	st, evs, trs := run(t,
		requestInput(10),
		admitInput(11, t0.Add(time.Second)),
		lkInput(12, lkParticipantJoined, id, "", t0.Add(2*time.Second)),
		dialInput(13, dialResult{Result: dialAnswered, Source: sourceDial, StartedAt: t0.Add(time.Second),
			AnsweredAt: t0.Add(4 * time.Second), FinishedAt: t0.Add(4 * time.Second), ParticipantIdentity: id}),
		lkInput(14, lkParticipantLeft, id, "CLIENT_INITIATED", t0.Add(10*time.Second)),
	)
	want := []string{"queued", "dialing", "ringing", "answered", "ended:completed"}
	if got := statuses(evs); !reflect.DeepEqual(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i, ev := range evs {
		if ev.Sequence != i+1 {
			t.Fatalf("event %d has sequence %d", i, ev.Sequence)
		}
	}
	if trs[1].effects != effDial {
		t.Fatalf("admit effects = %b, want dial", trs[1].effects)
	}
	end := evs[4]
	if end.EndedBy != schemas.EndedByCallee || end.DisconnectReason != "CLIENT_INITIATED" ||
		*end.RingDurationSeconds != 2 || *end.TalkDurationSeconds != 6 {
		t.Fatalf("ended event %+v ring %v talk %v", end, *end.RingDurationSeconds, *end.TalkDurationSeconds)
	}
	if string(end.Metadata) != `{"crm":1}` || end.CallbackURL == "" {
		t.Fatalf("ended event lost its routing facts: %+v", end)
	}
	// A dialed call keeps its metadata and callback URL after it ends:
	// its agent's post-call reports carry them.
	if st.Phase != schemas.StatusEnded || st.AppliedOffset != 14 || string(st.Metadata) != `{"crm":1}` || st.CallbackURL == "" ||
		st.DynamicVariables != nil || st.Agent != nil {
		t.Fatalf("final state %+v", st)
	}
}

// A command at or below the call's applied offset is a replay and changes
// nothing; a later duplicate request is ignored; a second admit is stale.
func TestTransitionsAreIdempotent(t *testing.T) {
	st, _, _ := run(t, requestInput(10))
	if tr := apply(st, requestInput(10)); tr.ignored != ignoreReplay || tr.next != nil {
		t.Fatalf("replayed request: %+v", tr)
	}
	if tr := apply(st, requestInput(20)); tr.ignored != ignoreDuplicate || tr.next != nil {
		t.Fatalf("duplicate request: %+v", tr)
	}
	st2, _, _ := run(t, requestInput(10), admitInput(11, t0))
	if tr := apply(st2, admitInput(11, t0)); tr.ignored != ignoreReplay || tr.effects != 0 {
		t.Fatalf("replayed admit: %+v", tr)
	}
	if tr := apply(st2, admitInput(15, t0)); tr.ignored != ignoreStale || tr.effects != 0 {
		t.Fatalf("second admit dialed again: %+v", tr)
	}
}

// Applying the same command to the same state gives the same events: what a
// replay after a crash between events and state writes relies on.
func TestTransitionsAreDeterministic(t *testing.T) {
	ins := []input{requestInput(10), admitInput(11, t0.Add(time.Second)),
		dialInput(12, dialResult{Result: dialFailed, Source: sourceDial, SIPStatusCode: 486, SIPStatus: "Busy Here", FinishedAt: t0.Add(2 * time.Second)})}
	var st *callState
	for _, in := range ins {
		a, b := apply(st, in), apply(st, in)
		if !reflect.DeepEqual(a.events, b.events) || !reflect.DeepEqual(a.next, b.next) {
			t.Fatalf("apply is not deterministic for %v", in.kind)
		}
		st = a.next
	}
}

func TestUnansweredOutcomes(t *testing.T) {
	cases := []struct {
		name string
		res  dialResult
		want string
		eff  effect
	}{
		{"busy", dialResult{Result: dialFailed, SIPStatusCode: 486, SIPStatus: "Busy Here"}, "ended:busy", effHangup},
		{"no answer", dialResult{Result: dialFailed, SIPStatusCode: 480, SIPStatus: "Temporarily Unavailable"}, "ended:no_answer", effHangup},
		{"declined", dialResult{Result: dialFailed, SIPStatusCode: 603, SIPStatus: "Decline"}, "ended:declined", effHangup},
		{"not found", dialResult{Result: dialFailed, SIPStatusCode: 404, SIPStatus: "Not Found"}, "ended:failed", effHangup},
		{"no sip", dialResult{Result: dialFailed, Error: "create room: unavailable"}, "ended:failed", effHangup},
		{"in doubt", dialResult{Result: dialInDoubt, Source: sourceRecovery}, "ended:failed", effHangup},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.res.FinishedAt = t0.Add(3 * time.Second)
			_, evs, trs := run(t, requestInput(1), admitInput(2, t0.Add(time.Second)), dialInput(3, c.res))
			if got := statuses(evs); !reflect.DeepEqual(got, []string{"queued", "dialing", c.want}) {
				t.Fatalf("events %v", got)
			}
			end := evs[2]
			if end.SIPStatusCode != c.res.SIPStatusCode || trs[2].effects != c.eff {
				t.Fatalf("ended %+v effects %b", end, trs[2].effects)
			}
			if c.res.Result == dialInDoubt && end.Reason != inDoubtReason {
				t.Fatalf("in-doubt reason %q", end.Reason)
			}
			if *end.RingDurationSeconds != 2 || end.TalkDurationSeconds != nil {
				t.Fatalf("durations ring %v talk %v", *end.RingDurationSeconds, end.TalkDurationSeconds)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	t.Run("queued", func(t *testing.T) {
		_, evs, trs := run(t, requestInput(1), cancelInput(2, "ws_a", t0.Add(time.Second)))
		if got := statuses(evs); !reflect.DeepEqual(got, []string{"queued", "ended:canceled"}) || trs[1].effects != 0 {
			t.Fatalf("events %v effects %b", got, trs[1].effects)
		}
		if evs[1].EndedBy != schemas.EndedByClient || evs[1].RingDurationSeconds != nil {
			t.Fatalf("ended %+v", evs[1])
		}
	})
	t.Run("answered", func(t *testing.T) {
		_, evs, trs := run(t, requestInput(1), admitInput(2, t0),
			dialInput(3, dialResult{Result: dialAnswered, AnsweredAt: t0.Add(time.Second), FinishedAt: t0.Add(time.Second)}),
			cancelInput(4, "ws_a", t0.Add(5*time.Second)))
		if got := statuses(evs); !reflect.DeepEqual(got, []string{"queued", "dialing", "ringing", "answered", "ended:canceled"}) {
			t.Fatalf("events %v", got)
		}
		if trs[3].effects != effHangup || *evs[4].TalkDurationSeconds != 4 {
			t.Fatalf("effects %b talk %v", trs[3].effects, *evs[4].TalkDurationSeconds)
		}
	})
	t.Run("other workspace", func(t *testing.T) {
		st, _, _ := run(t, requestInput(1))
		if tr := apply(st, cancelInput(2, "ws_b", t0)); tr.ignored != ignoreWrongWorkspace || tr.next != nil {
			t.Fatalf("a cancel from another workspace changed the call: %+v", tr)
		}
	})
	t.Run("after end", func(t *testing.T) {
		st, _, _ := run(t, requestInput(1), cancelInput(2, "ws_a", t0))
		if tr := apply(st, cancelInput(3, "ws_a", t0)); tr.ignored != ignoreAfterEnd || tr.next != nil {
			t.Fatalf("%+v", tr)
		}
	})
	t.Run("answer after cancel hangs up", func(t *testing.T) {
		st, _, _ := run(t, requestInput(1), admitInput(2, t0), cancelInput(3, "ws_a", t0))
		tr := apply(st, dialInput(4, dialResult{Result: dialAnswered, AnsweredAt: t0, FinishedAt: t0}))
		if tr.next != nil || len(tr.events) != 0 || tr.effects != effHangup {
			t.Fatalf("%+v", tr)
		}
	})
}

// A SIP participant leaving before the answer records the reason for the
// dial result's event; one leaving at max_call_duration is max_duration.
func TestParticipantLeft(t *testing.T) {
	id := calleeIdentity(testCallID)
	_, evs, trs := run(t, requestInput(1), admitInput(2, t0),
		lkInput(3, lkParticipantLeft, id, "USER_REJECTED", t0.Add(time.Second)),
		dialInput(4, dialResult{Result: dialFailed, SIPStatusCode: 486, SIPStatus: "Busy Here", FinishedAt: t0.Add(time.Second)}))
	if len(trs[2].events) != 0 || evs[len(evs)-1].DisconnectReason != "USER_REJECTED" {
		t.Fatalf("events %+v", evs)
	}

	_, evs, _ = run(t, requestInput(1), admitInput(2, t0),
		dialInput(3, dialResult{Result: dialAnswered, AnsweredAt: t0.Add(time.Second), FinishedAt: t0.Add(time.Second)}),
		lkInput(4, lkParticipantLeft, id, "CLIENT_INITIATED", t0.Add(60*time.Second)))
	if end := evs[len(evs)-1]; end.Outcome != schemas.OutcomeMaxDuration {
		t.Fatalf("left at max duration: %+v", end)
	}
	_, evs, _ = run(t, requestInput(1), admitInput(2, t0),
		dialInput(3, dialResult{Result: dialAnswered, AnsweredAt: t0.Add(time.Second), FinishedAt: t0.Add(time.Second)}),
		lkInput(4, lkParticipantLeft, id, "CLIENT_INITIATED", t0.Add(50*time.Second)))
	if end := evs[len(evs)-1]; end.Outcome != schemas.OutcomeCompleted {
		t.Fatalf("left before max duration: %+v", end)
	}

	st, _, _ := run(t, requestInput(1), admitInput(2, t0))
	if tr := apply(st, lkInput(3, lkParticipantLeft, "agent-x", "", t0)); tr.ignored != ignoreNotCallee {
		t.Fatalf("the agent leaving touched the call: %+v", tr)
	}
}

func TestRoomEnds(t *testing.T) {
	for _, event := range []string{lkRoomFinished, lkRoomGone} {
		_, evs, _ := run(t, requestInput(1), admitInput(2, t0),
			dialInput(3, dialResult{Result: dialAnswered, AnsweredAt: t0, FinishedAt: t0}),
			lkInput(4, event, "", "", t0.Add(time.Minute-10*time.Second)))
		if end := evs[len(evs)-1]; end.Outcome != schemas.OutcomeCompleted {
			t.Fatalf("%s: %+v", event, end)
		}
	}
	st, _, _ := run(t, requestInput(1), admitInput(2, t0))
	if tr := apply(st, lkInput(3, lkRoomFinished, "", "", t0)); tr.next != nil {
		t.Fatalf("room_finished during a dial ended it: %+v", tr)
	}
}

func TestWatchdogDecisions(t *testing.T) {
	st, _, _ := run(t, requestInput(1))
	tr := apply(st, input{kind: inDecision, offset: 2, callID: testCallID,
		dec: &decision{CallID: testCallID, WorkspaceID: "ws_a", Decision: decideExpire, DecidedAt: t0.Add(time.Hour)}})
	if len(tr.events) != 1 || tr.events[0].Outcome != schemas.OutcomeExpired {
		t.Fatalf("expire: %+v", tr)
	}
	st, _, _ = run(t, requestInput(1), admitInput(2, t0), dialInput(3, dialResult{Result: dialAnswered, AnsweredAt: t0, FinishedAt: t0}))
	tr = apply(st, input{kind: inDecision, offset: 4, callID: testCallID,
		dec: &decision{CallID: testCallID, WorkspaceID: "ws_a", Decision: decideMaxDuration, DecidedAt: t0.Add(2 * time.Minute)}})
	if len(tr.events) != 1 || tr.events[0].Outcome != schemas.OutcomeMaxDuration || tr.events[0].EndedBy != schemas.EndedByWatchdog || tr.effects != effHangup {
		t.Fatalf("max duration: %+v", tr)
	}
	// A decision that no longer fits the phase does nothing.
	st, _, _ = run(t, requestInput(1), admitInput(2, t0))
	if tr := apply(st, input{kind: inDecision, offset: 3, callID: testCallID,
		dec: &decision{CallID: testCallID, WorkspaceID: "ws_a", Decision: decideExpire, DecidedAt: t0}}); tr.next != nil {
		t.Fatalf("expired a dialing call: %+v", tr)
	}
}

// A dial that sent its SIP request late in its claim (waiting for the
// trunk's turn, a slow room, a broker slow to acknowledge its sending
// record) rings until ringing timeout after the request, not after the
// claim: another owner's watchdog must not take it for dead before then
// (it would delete the room of a phone still ringing).
func TestInDoubtCountsFromTheSIPRequest(t *testing.T) {
	d := &dialer{cfg: Config{WatchdogGrace: 5 * time.Second, dialOverhead: 30 * time.Second, clockMargin: 10 * time.Second},
		dials: dialSet{m: map[string]*dialEntry{}}}
	o := &partitionOwner{d: d}
	now := t0.Add(time.Minute)
	st := &callState{CallID: testCallID, Phase: schemas.StatusRinging, Agent: &agentSnapshot{RingingTimeoutSeconds: 10},
		DialingAt: now.Add(-20 * time.Second), SIPSendingAt: now.Add(-8 * time.Second)}
	if o.inDoubt(st, now) {
		t.Fatal("in doubt 8 s after its SIP request, with 10 s of ringing and 5 s of grace")
	}
	st.SIPSendingAt = now.Add(-16 * time.Second)
	if !o.inDoubt(st, now) {
		t.Fatal("not in doubt 16 s after its SIP request")
	}
	st.Phase, st.SIPSendingAt = schemas.StatusDialing, time.Time{}
	if o.inDoubt(st, now) {
		t.Fatal("a claim that never recorded sending, in doubt within its window")
	}
}

func TestRejected(t *testing.T) {
	in := input{kind: inRejected, offset: 5, at: t0, callID: testCallID, rej: &rejection{
		class: classSchema, reason: "schema: /to: missing", workspaceID: "unknown",
		fields: []schemas.FieldError{{Field: "/to", Message: "missing"}}}}
	st, evs, _ := run(t, in)
	if len(evs) != 1 || evs[0].Outcome != schemas.OutcomeRejected || evs[0].Sequence != 1 || len(evs[0].Errors) != 1 {
		t.Fatalf("%+v", evs)
	}
	// A bad record naming a known call never touches it.
	if tr := apply(st, input{kind: inRejected, offset: 6, callID: testCallID, rej: in.rej}); tr.next != nil || len(tr.events) != 0 {
		t.Fatalf("%+v", tr)
	}
	// Nor does a valid request arriving after the rejection of its id.
	if tr := apply(st, requestInput(7)); tr.ignored != ignoreDuplicate {
		t.Fatalf("%+v", tr)
	}
}

func TestRoomNameFor(t *testing.T) {
	a, b := roomNameFor("agent_a", testCallID), roomNameFor("agent_a", testCallID)
	if a != b || len(a) != len("agent_a-")+10 {
		t.Fatalf("%q %q", a, b)
	}
	req := schemas.CallRequested{CallID: testCallID, WorkspaceID: "ws_a", To: "+15550100001", CallAgentID: "agent_a", RoomName: a, RequestedAt: t0}
	if _, err := schemas.ValidateValue(schemas.SchemaCallRequested, req); err != nil {
		t.Fatalf("derived room name is not a valid room_name: %v", err)
	}
}

// A request older than the dialer's memory of ended calls could be a late
// duplicate of a call it has forgotten: it ends expired, as the call's first
// event, and is never dialed. A fresh one within the window is queued.
func TestStaleRequestIsNotDialed(t *testing.T) {
	in := requestInput(7)
	in.maxAge = time.Hour
	in.at = t0.Add(2 * time.Hour)
	tr := apply(nil, in)
	if tr.effects&effDial != 0 || len(tr.events) != 1 {
		t.Fatalf("transition %+v", tr)
	}
	ev := tr.events[0]
	if ev.Status != schemas.StatusEnded || ev.Outcome != schemas.OutcomeExpired || ev.Sequence != 1 || tr.next.Phase != schemas.StatusEnded {
		t.Fatalf("event %+v", ev)
	}
	if _, err := schemas.ValidateValue(schemas.SchemaCallEvent, ev); err != nil {
		t.Fatal(err)
	}
	in.at = t0.Add(59 * time.Minute)
	if tr := apply(nil, in); tr.next.Phase != schemas.StatusQueued {
		t.Fatalf("fresh request not queued: %+v", tr.next)
	}
}

func startInput(off int64, kind dialResultKind, src dialSource, claim, at time.Time) input {
	return dialInput(off, dialResult{Result: kind, Source: src, ClaimedAt: claim, StartedAt: at, FinishedAt: at})
}

// A claim that never sent its SIP request is dialed again under a new
// claim; one that recorded sending is not (it may have rung), unless the
// dial itself says it did not send; records of an older claim change
// nothing; past maxRedials the call ends failed, never rung.
func TestClaimsThatNeverSent(t *testing.T) {
	claim := t0.Add(time.Second)
	base := []input{requestInput(10), admitInput(11, claim)}

	st, _, trs := run(t, append(base, startInput(12, dialNotSent, sourceRecovery, claim, t0.Add(time.Minute)))...)
	if trs[2].effects != effDial || !st.DialingAt.Equal(t0.Add(time.Minute)) || st.Redials != 1 || st.Phase != schemas.StatusDialing {
		t.Fatalf("unsent claim: effects %b, state %+v", trs[2].effects, st)
	}

	_, _, trs = run(t, append(base, startInput(12, dialSending, sourceDial, claim, claim),
		startInput(13, dialNotSent, sourceRecovery, claim, t0.Add(time.Minute)))...)
	if trs[3].ignored != ignoreStale || trs[3].effects != 0 {
		t.Fatalf("recovery not_sent after sending: %+v", trs[3])
	}
	_, _, trs = run(t, append(base, startInput(12, dialSending, sourceDial, claim, claim),
		startInput(13, dialNotSent, sourceDial, claim, t0.Add(time.Minute)))...)
	if trs[3].effects != 0 || trs[3].next == nil || !trs[3].next.DialingAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("the dial's own not_sent after its late sending: a new claim, dialed later by the watchdog: %+v", trs[3])
	}
	_, _, trs = run(t, append(base, startInput(12, dialNotSent, sourceRecovery, t0, t0.Add(time.Minute)))...)
	if trs[2].ignored != ignoreStale {
		t.Fatalf("not_sent of another claim: %+v", trs[2])
	}

	ins := base
	at := claim
	for i := range maxRedials + 1 {
		next := at.Add(time.Minute)
		ins = append(ins, startInput(int64(12+i), dialNotSent, sourceRecovery, at, next))
		at = next
	}
	st, evs, _ := run(t, ins...)
	if st.Phase != schemas.StatusEnded || st.Outcome != schemas.OutcomeFailed || evs[len(evs)-1].EndedBy != schemas.EndedByDialer {
		t.Fatalf("after %d unsent claims: %+v", maxRedials+1, st)
	}
}

// A campaign contact's call carries its campaign, contact and attempt on
// every event, from queued to ended, so the scheduler can match the outcome
// and a receiver can group the calls.
func TestCampaignCallEventsCarryTheContact(t *testing.T) {
	ref := &schemas.CampaignRef{CampaignID: "0123456789abcdef01234567", ContactID: "crm-17", Attempt: 2}
	req := requestInput(10)
	req.req.Campaign = ref
	_, evs, _ := run(t, req, admitInput(11, t0.Add(time.Second)), cancelInput(12, "ws_a", t0.Add(2*time.Second)))
	if len(evs) < 2 || evs[len(evs)-1].Status != schemas.StatusEnded {
		t.Fatalf("events %+v", evs)
	}
	for _, ev := range evs {
		if ev.CampaignID != ref.CampaignID || ev.ContactID != ref.ContactID || ev.Attempt != ref.Attempt {
			t.Errorf("%s event lacks the campaign: %+v", ev.Status, ev)
		}
	}
	// A call without a campaign has none of the three.
	_, evs, _ = run(t, requestInput(10))
	if ev := evs[0]; ev.CampaignID != "" || ev.ContactID != "" || ev.Attempt != 0 {
		t.Fatalf("plain call event %+v", ev)
	}
}

// A scheduled call canceled before its time is released with canceled_at:
// it ends canceled by the client as its first event and is never dialed.
func TestReleasedAlreadyCanceledIsNotDialed(t *testing.T) {
	in := requestInput(10)
	at := t0.Add(-time.Minute)
	in.req.CanceledAt = &at
	st, evs, trs := run(t, in)
	if trs[0].effects&effDial != 0 || len(evs) != 1 {
		t.Fatalf("transition %+v", trs[0])
	}
	if ev := evs[0]; ev.Status != schemas.StatusEnded || ev.Outcome != schemas.OutcomeCanceled || ev.EndedBy != schemas.EndedByClient || ev.Sequence != 1 {
		t.Fatalf("event %+v", ev)
	}
	if st.Phase != schemas.StatusEnded {
		t.Fatalf("state %+v", st)
	}
	// A later duplicate of the release changes nothing.
	if tr := apply(st, requestInput(11)); tr.ignored != ignoreDuplicate {
		t.Fatalf("%+v", tr)
	}
}
