package dialer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/compliance"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// The compliance check right before the dial (compliance.go), against the
// embedded broker and the fake LiveKit: a refused call ends with the rule's
// outcome and reason and never reaches CreateSIPParticipant (so no phone
// rings); the fake's busy suffix (486) ends allowed calls at once.

const complianceRegistryYAML = `
workspaces:
  # Production defaults but for the caps: home country US, 08:00-21:00 in
  # the callee's local time, at most 3 attempts per number per day.
  - id: ws_rules
    limits: {max_concurrent_calls: 10, calls_per_second: 1000, burst: 1000}
    compliance: {home_country: US}
  # All day, so the test range (no time zone) may be called.
  - id: ws_allday
    limits: {max_concurrent_calls: 10, calls_per_second: 1000, burst: 1000}
    compliance: {home_country: US, calling_hours: {start: "00:00", end: "24:00"}, max_attempts_per_day: 3}
agents:
  - {id: agent_rules, workspace: ws_rules, livekit_agent_name: agent-rules, sip_trunk_id: ST_r, ringing_timeout: 1s, max_call_duration: 1m}
  - {id: agent_allday, workspace: ws_allday, livekit_agent_name: agent-allday, sip_trunk_id: ST_a, ringing_timeout: 1s, max_call_duration: 1m}
`

// nyNumber and laNumber are real-looking numbers in New York and Los
// Angeles whose 486 suffix makes the fake LiveKit answer busy.
const (
	nyNumber = "+12127360486"
	laNumber = "+13102750486"
	// 15:00 in New York and 12:00 in Los Angeles on a winter day.
	middayUTC = "2026-01-15T20:00:00Z"
	// 21:30 in New York, 18:30 in Los Angeles.
	nyEveningUTC = "2026-01-16T02:30:00Z"
)

// complianceComponent is a component whose compliance clock stands still
// at at ("" keeps the real clock: the attempt history is in the events'
// real times).
func complianceComponent(t *testing.T, at string, mod func(*Config)) *component {
	b := startBroker(t, 3)
	lk := newFakeLiveKit()
	cfg := testConfig(t, b.Addr(), testRegistry(t, complianceRegistryYAML))
	// The topics exist before the test writes to the do-not-call list.
	admin := newProducer(t, b.Addr())
	if err := kafkax.CreateTopics(context.Background(), admin, cfg.Kafka.TopicsConfig(),
		append([]string{schemas.TopicSuppressions}, kafkax.CallTopicNames...)...); err != nil {
		t.Fatal(err)
	}
	cfg.liveKit = lk
	if at != "" {
		clock, err := time.Parse(time.RFC3339, at)
		if err != nil {
			t.Fatal(err)
		}
		cfg.complianceClock = func() time.Time { return clock }
	}
	if mod != nil {
		mod(&cfg)
	}
	c := &component{t: t, b: b, lk: lk, cfg: cfg}
	c.log = collect(t, b.Addr())
	c.prod = newProducer(t, b.Addr())
	return c
}

// refused asserts that call id ended with outcome, a reason containing
// want, ended_by dialer, after queued only, and was never dialed.
func (c *component) refused(id string, outcome schemas.Outcome, want string) {
	c.t.Helper()
	c.waitEnded(id)
	evs := c.log.callEvents(c.t, id)
	if len(evs) != 2 || evs[0].Status != schemas.StatusQueued || evs[1].Status != schemas.StatusEnded {
		c.t.Fatalf("call %s: events %+v, want queued then ended", id, evs)
	}
	ev := evs[1]
	if ev.Outcome != outcome || ev.EndedBy != schemas.EndedByDialer || !strings.Contains(ev.Reason, want) {
		c.t.Errorf("call %s ended %s by %s (%q); want %s by dialer, reason containing %q", id, ev.Outcome, ev.EndedBy, ev.Reason, outcome, want)
	}
	if n := c.lk.dialsTo(ev.RoomName); n != 0 {
		c.t.Errorf("call %s to a refused number was dialed %d times", id, n)
	}
}

func (c *component) suppress(ws, number string) {
	c.t.Helper()
	rec, err := compliance.SuppressionRecord(schemas.Suppression{WorkspaceID: ws, Number: number, Reason: schemas.ReasonOptOut,
		Source: schemas.SourceAPI, AddedAt: time.Now().UTC()}, "/test")
	if err != nil {
		c.t.Fatal(err)
	}
	produce(c.t, c.prod, rec)
}

func TestComplianceRefusesBeforeTheDial(t *testing.T) {
	c := complianceComponent(t, middayUTC, nil)
	c.suppress("ws_rules", nyNumber)
	c.d = startDialer(t, c.cfg)

	listed := c.request("ws_rules", "agent_rules", nyNumber)
	premium := c.request("ws_rules", "agent_rules", "+19005550123")
	cuba := c.request("ws_rules", "agent_rules", "+5352123456")
	// The test range has no time zone: the default hours never admit it.
	nowhere := c.request("ws_rules", "agent_rules", "+15550100486")
	allowed := c.request("ws_rules", "agent_rules", laNumber)

	c.refused(listed, schemas.OutcomeSuppressed, "do-not-call list (opt_out")
	c.refused(premium, schemas.OutcomeDestinationNotAllowed, "premium_rate")
	c.refused(cuba, schemas.OutcomeDestinationNotAllowed, "CU")
	c.refused(nowhere, schemas.OutcomeOutsideCallingHours, "calling hours")
	c.waitEnded(allowed)
	if ev := c.log.ended(t, allowed); ev.Outcome != schemas.OutcomeBusy || c.lk.dialsTo(ev.RoomName) != 1 {
		t.Errorf("the allowed call ended %s after %d dials; want busy after 1", ev.Outcome, c.lk.dialsTo(ev.RoomName))
	}
	for outcome, want := range map[compliance.Outcome]float64{compliance.OutcomeSuppressed: 1, compliance.OutcomeDestinationNotAllowed: 2,
		compliance.OutcomeOutsideCallingHours: 1, compliance.OutcomeAttemptCapped: 0} {
		if got := c.d.metric("dialstream_dialer_compliance_refusals_total", "outcome", string(outcome)); got != want {
			t.Errorf("refusals{outcome=%s} = %v, want %v", outcome, got, want)
		}
	}
	if got := c.d.metric("dialstream_dialer_calls_ended_total", "outcome", string(schemas.OutcomeSuppressed)); got != 1 {
		t.Errorf("calls_ended_total{outcome=suppressed} = %v, want 1", got)
	}
}

// The same instant is 21:30 in New York and 18:30 in Los Angeles: the check
// is in the callee's local time.
func TestComplianceCallingHoursInTheCalleesZone(t *testing.T) {
	c := complianceComponent(t, nyEveningUTC, nil)
	c.d = startDialer(t, c.cfg)
	ny := c.request("ws_rules", "agent_rules", nyNumber)
	la := c.request("ws_rules", "agent_rules", laNumber)
	c.refused(ny, schemas.OutcomeOutsideCallingHours, "America/New_York")
	c.waitEnded(la)
	if ev := c.log.ended(t, la); ev.Outcome != schemas.OutcomeBusy {
		t.Errorf("the Los Angeles call ended %s (%s); want busy (dialed at 18:30 local)", ev.Outcome, ev.Reason)
	}
}

// The fourth call to one number within 24 h ends attempt_capped, with the
// four requests put on three different partitions.
func TestComplianceAttemptCapAcrossPartitions(t *testing.T) {
	c := complianceComponent(t, "", nil)
	c.d = startDialer(t, c.cfg)
	manual := newProducer(t, c.b.Addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var ids []string
	for i := range 4 {
		id := newCallID()
		rec := requestRecord(t, schemas.CallRequested{CallID: id, WorkspaceID: "ws_allday", CallAgentID: "agent_allday", To: "+15550100486"})
		rec.Partition = int32(i % 3)
		produce(t, manual, rec)
		ids = append(ids, id)
		c.waitEnded(id) // one after the other: which call is the fourth is then certain
	}
	for _, id := range ids[:3] {
		if ev := c.log.ended(t, id); ev.Outcome != schemas.OutcomeBusy {
			t.Errorf("call %s ended %s (%s), want busy: the first three attempts are allowed", id, ev.Outcome, ev.Reason)
		}
	}
	c.refused(ids[3], schemas.OutcomeAttemptCapped, "3")
	if got := c.lk.totalDials(); got != 3 {
		t.Errorf("%d dials, want 3", got)
	}
}

// Fail closed: until its copy of the do-not-call list has caught up, the
// dialer dials nothing and says so on /readyz; once loaded it refuses the
// listed number and dials the other.
func TestComplianceFailsClosedUntilLoaded(t *testing.T) {
	hold := make(chan struct{})
	c := complianceComponent(t, middayUTC, func(cfg *Config) { cfg.complianceHold = hold })
	c.suppress("ws_rules", nyNumber)
	c.cfg.Metrics = obs.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningDialer{t: t, cancel: cancel, done: make(chan error, 1), addr: c.cfg.HTTPAddr, reg: c.cfg.Metrics}
	go func() { r.done <- Run(ctx, c.cfg) }()
	t.Cleanup(func() { r.stop(t) })
	c.d = r

	listed := c.request("ws_rules", "agent_rules", nyNumber)
	other := c.request("ws_rules", "agent_rules", laNumber)
	testutil.Eventually(t, 20*time.Second, "the calls put off by the check", func() bool {
		return r.metric("dialstream_dialer_compliance_not_ready_total") >= 2
	})
	// Retries come every 250 ms: several rounds more must not dial either.
	testutil.Eventually(t, 20*time.Second, "several rounds of put-off checks", func() bool {
		return r.metric("dialstream_dialer_compliance_not_ready_total") >= 8
	})
	if n := c.lk.totalDials(); n != 0 {
		t.Fatalf("%d dials before the do-not-call list was loaded", n)
	}
	for _, id := range []string{listed, other} {
		for _, ev := range c.log.callEvents(t, id) {
			if ev.Status != schemas.StatusQueued {
				t.Fatalf("call %s went %s before the do-not-call list was loaded", id, ev.Status)
			}
		}
	}
	if ready(t, r.addr) {
		t.Error("/readyz says ready while the do-not-call list is not loaded")
	}

	close(hold)
	c.refused(listed, schemas.OutcomeSuppressed, "do-not-call list")
	c.waitEnded(other)
	if ev := c.log.ended(t, other); ev.Outcome != schemas.OutcomeBusy {
		t.Errorf("the other call ended %s (%s) once loaded, want busy", ev.Outcome, ev.Reason)
	}
	testutil.Eventually(t, 10*time.Second, "ready once loaded", func() bool { return ready(t, r.addr) })
}
