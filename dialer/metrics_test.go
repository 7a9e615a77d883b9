package dialer

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// Every series exists from the start (dashboards show zeros, not gaps),
// names follow the conventions, and label values are bounded.
func TestMetricsInitialized(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	adm := newAdmission(testRegistry(t, testRegistryYAML), 3, time.Now, func(admitTicket) {})
	if err := registerWorkspaces(reg, adm.reg, adm); err != nil {
		t.Fatal(err)
	}
	series := testutil.MetricSeries(t, reg, "dialstream_dialer_")
	want := map[string]int{
		"dialstream_dialer_calls_accepted_total":             1,
		"dialstream_dialer_calls_admitted_total":             1,
		"dialstream_dialer_calls_rejected_total":             len(rejectClasses),
		"dialstream_dialer_calls_ended_total":                len(schemas.Outcomes),
		"dialstream_dialer_sip_responses_total":              len(sipClasses),
		"dialstream_dialer_livekit_requests_total":           len(liveKitMethods) * 3,
		"dialstream_dialer_livekit_request_duration_seconds": len(liveKitMethods),
		"dialstream_dialer_dlq_records_total":                len(rejectClasses),
		"dialstream_dialer_livekit_webhooks_total":           len(webhookResults),
		"dialstream_dialer_workspace_live_calls":             3,
		"dialstream_dialer_workspace_queued_calls":           3,
		"dialstream_dialer_workspace_max_concurrent_calls":   3,
		"dialstream_dialer_oldest_call_age_seconds":          len(agePhases),
		"dialstream_dialer_overdue_calls":                    len(agePhases),
		"dialstream_dialer_request_to_dialing_seconds":       1,
		"dialstream_dialer_dial_to_answer_seconds":           1,
		"dialstream_dialer_talk_duration_seconds":            1,
	}
	for name, n := range want {
		if series[name] != n {
			t.Errorf("%s: %d series, want %d", name, series[name], n)
		}
	}
}

// The ages and overdue counts of open calls, as the watchdog reports them.
func TestReportAges(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	agent := &agentSnapshot{RingingTimeoutSeconds: 20, MaxCallDurationSeconds: 60}
	d := &dialer{cfg: Config{MaxQueueWait: time.Minute, WatchdogGrace: 5 * time.Second}, m: m}
	w := &partitionOwner{d: d, p: 1, calls: map[string]*callState{
		"q-young":  {Phase: schemas.StatusQueued, QueuedAt: now.Add(-10 * time.Second)},
		"q-old":    {Phase: schemas.StatusQueued, QueuedAt: now.Add(-2 * time.Minute)},
		"dialing":  {Phase: schemas.StatusDialing, DialingAt: now.Add(-3 * time.Second), Agent: agent},
		"ringing":  {Phase: schemas.StatusRinging, DialingAt: now.Add(-30 * time.Second), RingingAt: now.Add(-28 * time.Second), Agent: agent},
		"answered": {Phase: schemas.StatusAnswered, AnsweredAt: now.Add(-40 * time.Second), Agent: agent},
		"ended":    {Phase: schemas.StatusEnded, EndedAt: now.Add(-time.Hour)},
	}}
	w.reportAges(now)
	// A second partition's calls add up (overdue) or take the max (oldest).
	w2 := &partitionOwner{d: d, p: 2, calls: map[string]*callState{
		"answered-long": {Phase: schemas.StatusAnswered, AnsweredAt: now.Add(-70 * time.Second), Agent: agent},
		"q-old2":        {Phase: schemas.StatusQueued, QueuedAt: now.Add(-90 * time.Second)},
	}}
	w2.reportAges(now)

	got := collectGauges(t, m.ages)
	want := map[string]float64{
		`oldest{phase="queued"}`: 120, `overdue{phase="queued"}`: 2,
		`oldest{phase="dialing"}`: 3, `overdue{phase="dialing"}`: 0,
		`oldest{phase="ringing"}`: 28, `overdue{phase="ringing"}`: 1, // 30 s > 20 s ringing + 5 s grace
		`oldest{phase="answered"}`: 70, `overdue{phase="answered"}`: 1, // 70 s > 60 s + 5 s
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g < v-0.5 || g > v+0.5 {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}

	// A partition that leaves takes its calls with it.
	m.ages.drop(1)
	m.ages.drop(2)
	for k, v := range collectGauges(t, m.ages) {
		if v != 0 {
			t.Errorf("after drop: %s = %v, want 0", k, v)
		}
	}
}

func collectGauges(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		short := strings.TrimSuffix(strings.TrimPrefix(mf.GetName(), "dialstream_dialer_"), "_call_age_seconds")
		short = strings.TrimSuffix(short, "_calls")
		for _, s := range mf.GetMetric() {
			out[short+`{phase="`+s.GetLabel()[0].GetValue()+`"}`] = s.GetGauge().GetValue()
		}
	}
	return out
}

// What a user does moves exactly the counters it should: one busy call adds
// one to the busy outcome and one 4xx SIP response, a declined call one 6xx,
// an answered call one dial-to-answer observation, then one talk duration
// when the client cancels it; the workspace's live gauge follows the call;
// the group's lag drains to zero.
func TestMetricsFollowCalls(t *testing.T) {
	c := newComponent(t, nil)
	d := c.d
	outcomes := func() map[schemas.Outcome]float64 {
		m := map[schemas.Outcome]float64{}
		for _, o := range schemas.Outcomes {
			m[o] = d.metric("dialstream_dialer_calls_ended_total", "outcome", string(o))
		}
		return m
	}
	before := outcomes()
	sip4, sip6 := d.metric("dialstream_dialer_sip_responses_total", "class", "4xx"), d.metric("dialstream_dialer_sip_responses_total", "class", "6xx")
	accepted := d.metric("dialstream_dialer_calls_accepted_total")

	busy := c.request("ws_a", "agent_a", "+15550100486")
	c.waitEnded(busy)
	testutil.Eventually(t, 5*time.Second, "busy counted", func() bool {
		return d.metric("dialstream_dialer_calls_ended_total", "outcome", string(schemas.OutcomeBusy)) == before[schemas.OutcomeBusy]+1
	})
	after := outcomes()
	for o, v := range after {
		want := before[o]
		if o == schemas.OutcomeBusy {
			want++
		}
		if v != want {
			t.Errorf("after one busy call: ended{outcome=%s} = %v, want %v", o, v, want)
		}
	}
	if got := d.metric("dialstream_dialer_sip_responses_total", "class", "4xx"); got != sip4+1 {
		t.Errorf("sip 4xx = %v, want %v", got, sip4+1)
	}
	if got := d.metric("dialstream_dialer_livekit_requests_total", "method", mCreateSIPParticipant, "result", "sip_error"); got != 1 {
		t.Errorf("CreateSIPParticipant sip_error = %v, want 1", got)
	}
	if got := d.metric("dialstream_dialer_calls_accepted_total"); got != accepted+1 {
		t.Errorf("accepted = %v, want %v", got, accepted+1)
	}
	if got := histCount(d.reg, "dialstream_dialer_request_to_dialing_seconds"); got != 1 {
		t.Errorf("request_to_dialing observations = %v, want 1", got)
	}

	declined := c.request("ws_a", "agent_a", "+15550100603")
	c.waitEnded(declined)
	testutil.Eventually(t, 5*time.Second, "declined counted", func() bool {
		return d.metric("dialstream_dialer_calls_ended_total", "outcome", string(schemas.OutcomeDeclined)) == before[schemas.OutcomeDeclined]+1
	})
	if got := d.metric("dialstream_dialer_sip_responses_total", "class", "6xx"); got != sip6+1 {
		t.Errorf("sip 6xx = %v, want %v", got, sip6+1)
	}

	// An answered call is live in its workspace until the client cancels it.
	answered := c.request("ws_b", "agent_b", "+15550100999")
	c.waitStatus(answered, schemas.StatusAnswered)
	testutil.Eventually(t, 5*time.Second, "ws_b live = 1", func() bool {
		return d.metric("dialstream_dialer_workspace_live_calls", "workspace", "ws_b") == 1
	})
	// The answered event is in Kafka before the transition's metrics are
	// observed (they are recorded once the whole transition is durable), so the test
	// may read the histogram between the two: wait for it.
	testutil.EventuallyWhy(t, 5*time.Second, "one dial_to_answer observation", func() (bool, string) {
		got := histCount(d.reg, "dialstream_dialer_dial_to_answer_seconds")
		return got == 1, fmt.Sprintf("%v observations", got)
	})
	if got := d.metric("dialstream_dialer_workspace_max_concurrent_calls", "workspace", "ws_b"); got != 2 {
		t.Errorf("ws_b limit = %v, want 2", got)
	}
	testutil.Eventually(t, 5*time.Second, "the answered call's age reported", func() bool {
		return d.metric("dialstream_dialer_oldest_call_age_seconds", "phase", "answered") > 0
	})
	produce(t, c.prod, cancelRecord(t, answered, "ws_b"))
	c.waitEnded(answered)
	testutil.Eventually(t, 5*time.Second, "canceled counted, ws_b idle", func() bool {
		return d.metric("dialstream_dialer_calls_ended_total", "outcome", string(schemas.OutcomeCanceled)) == before[schemas.OutcomeCanceled]+1 &&
			d.metric("dialstream_dialer_workspace_live_calls", "workspace", "ws_b") == 0
	})
	if got := histCount(d.reg, "dialstream_dialer_talk_duration_seconds"); got != 1 {
		t.Errorf("talk duration observations = %v, want 1", got)
	}
	if got := d.metric("dialstream_dialer_overdue_calls"); got != 0 {
		t.Errorf("overdue calls = %v, want 0", got)
	}

	// Every command is committed in time, so the group's lag drains to zero.
	testutil.Eventually(t, 3*lagInterval, "consumer lag measured and drained", func() bool {
		return hasSeries(d.reg, "dialstream_dialer_consumer_lag_records", "group", DefaultGroup, "topic", schemas.TopicRequested) &&
			d.metric("dialstream_dialer_consumer_lag_records", "topic", schemas.TopicRequested) == 0
	})
}

func histCount(reg prometheus.Gatherer, name string) float64 {
	mfs, _ := reg.Gather()
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				n += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return n
}

func hasSeries(reg prometheus.Gatherer, name string, labels ...string) bool {
	_, n := series(reg, name, labels...)
	return n > 0
}
