package containers

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/tests/invariants"
)

// How a fault test proves that its fault hit live work: measured from the
// outside, like the invariants — metrics scraped from the containers'
// published ports, the consumer groups as the broker describes them, and
// the outside records (events topic, phone network, receiver) the checker
// reads. A fault that hit nothing proves nothing, so a zero fails the test.

// evidence is one measurement of what a fault hit.
type evidence struct {
	what   string
	n      int
	detail string // examples, the figure's source
	// info marks a figure reported for the closing note but not required:
	// it may be zero in a run where the fault still mattered.
	info bool
}

// proof is what a fault returns: it is judged once the run has settled,
// with everything the run recorded and the checker's report of it.
type proof func(o invariants.Observed, rep invariants.Report) []evidence

// judge logs every piece of evidence and fails the test for each required
// one that is zero.
func (tp *topology) judge(evs []evidence) {
	tp.t.Helper()
	for _, e := range evs {
		mark := "EVIDENCE"
		if e.info {
			mark = "evidence (info)"
		}
		line := fmt.Sprintf("%s %s: %d", mark, e.what, e.n)
		if e.detail != "" {
			line += " (" + e.detail + ")"
		}
		tp.t.Log(line)
		if e.n == 0 && !e.info {
			tp.t.Errorf("the fault hit nothing: %s is 0", e.what)
		}
	}
}

// scrape reads one service's /metrics through its published port.
func (tp *topology) scrape(ctx context.Context, name string) (map[string]*dto.MetricFamily, error) {
	addr, err := tp.hostAddr(ctx, name)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics of %s: %s", name, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse /metrics of %s: %w", name, err)
	}
	return mfs, nil
}

// metric is the sum of a family's series whose labels include kv (name,
// value, name, value...): a counter's or gauge's value, a histogram's
// sample count. A family or a labelled series the service does not expose
// fails the test: a renamed metric must not read as zero.
func (tp *topology) metric(ctx context.Context, service, family string, kv ...string) float64 {
	tp.t.Helper()
	mfs, err := tp.scrape(ctx, service)
	if err != nil {
		tp.t.Fatalf("scrape %s: %v", service, err)
	}
	v, err := sumSeries(mfs, family, kv...)
	if err != nil {
		tp.t.Fatalf("%s: %v", service, err)
	}
	return v
}

// metricOf sums one family over several services.
func (tp *topology) metricOf(ctx context.Context, services []string, family string, kv ...string) float64 {
	tp.t.Helper()
	var sum float64
	for _, s := range services {
		sum += tp.metric(ctx, s, family, kv...)
	}
	return sum
}

func sumSeries(mfs map[string]*dto.MetricFamily, family string, kv ...string) (float64, error) {
	mf, ok := mfs[family]
	if !ok {
		return 0, fmt.Errorf("no metric family %s", family)
	}
	var sum float64
	matched := 0
	for _, m := range mf.GetMetric() {
		if !hasLabels(m, kv) {
			continue
		}
		matched++
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		default:
			return 0, fmt.Errorf("%s: series of an unsupported type %s", family, mf.GetType())
		}
	}
	if matched == 0 {
		return 0, fmt.Errorf("%s has no series with labels %v", family, kv)
	}
	return sum, nil
}

func hasLabels(m *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == kv[i] && l.GetValue() == kv[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// The consumer groups, as the broker describes them.
const (
	dialerGroup   = "dialstream-dialer"
	notifierGroup = "dialstream-notifier"
)

// admin is the test's own Kafka client for describing groups; it follows
// the broker's published port through restarts.
func (tp *topology) admin() *kadm.Client {
	tp.t.Helper()
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.adm == nil {
		cl, err := kgo.NewClient(tp.kafkaOpts()...)
		if err != nil {
			tp.t.Fatalf("kafka admin client: %v", err)
		}
		tp.t.Cleanup(cl.Close)
		tp.adm = kadm.NewClient(cl)
	}
	return tp.adm
}

// assignment says which service owns each partition of topic in a stable
// group. Every service's KAFKA_CLIENT_ID is its container name, and a
// consumer's client id is that name or the name plus a suffix ("dialer-1",
// "dialer-1-consumer").
func (tp *topology) assignment(ctx context.Context, group, topic string) (map[string][]int32, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	dgs, err := tp.admin().DescribeGroups(ctx, group)
	if err != nil {
		return nil, err
	}
	dg, ok := dgs[group]
	switch {
	case !ok:
		return nil, fmt.Errorf("group %s not described", group)
	case dg.Err != nil:
		return nil, fmt.Errorf("group %s: %w", group, dg.Err)
	case dg.State != "Stable":
		return nil, fmt.Errorf("group %s is %s", group, dg.State)
	}
	out := map[string][]int32{}
	for _, m := range dg.Members {
		owner := strings.TrimSuffix(m.ClientID, "-consumer")
		c, ok := m.Assigned.AsConsumer()
		if !ok {
			continue
		}
		for _, t := range c.Topics {
			if t.Topic == topic {
				out[owner] = append(out[owner], t.Partitions...)
			}
		}
	}
	for o := range out {
		slices.Sort(out[o])
	}
	return out, nil
}

// owned waits until the group is stable with owner holding at least one
// partition of topic, and returns them.
func (tp *topology) owned(ctx context.Context, group, topic, owner string) []int32 {
	tp.t.Helper()
	var parts []int32
	tp.waitUntil(ctx, 20*time.Second, fmt.Sprintf("%s to own partitions of %s in group %s", owner, topic, group), func() (bool, string) {
		a, err := tp.assignment(ctx, group, topic)
		if err != nil {
			return false, err.Error()
		}
		parts = a[owner]
		return len(parts) > 0, fmt.Sprintf("assignment %v", a)
	})
	return parts
}

// waitUntil polls cond every 100 ms until it holds, failing the test after
// within (or when ctx ends). Used for conditions that take a network round
// trip each (a metrics scrape, a group description); the 20 ms of
// testutil.EventuallyWhy would flood the services for nothing.
func (tp *topology) waitUntil(ctx context.Context, within time.Duration, what string, cond func() (bool, string)) {
	tp.t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tp.t.Fatalf("timed out after %s waiting for %s; last: %s", within, what, why)
		}
		select {
		case <-ctx.Done():
			tp.t.Fatalf("waiting for %s: %v; last: %s", what, ctx.Err(), why)
		case <-tick.C:
		}
	}
}

// ringingDialOn waits until a dial on the given partitions is ringing (a
// number whose callee rings before answering or hanging up, dialed within
// the last 500 ms, its answer and end not written), so that a fault acted on
// right after meets a dial in flight, not a lucky gap between calls.
func (tp *topology) ringingDialOn(ctx context.Context, rec *invariants.Recorder, parts []int32, within time.Duration) invariants.InFlight {
	tp.t.Helper()
	hc := httpClient()
	var found invariants.InFlight
	tp.waitUntil(ctx, within, fmt.Sprintf("a ringing dial on partitions %v", parts), func() (bool, string) {
		o, err := tp.observe(ctx, rec, hc)
		if err != nil {
			return false, err.Error()
		}
		now := time.Now()
		fs := invariants.DialsInFlight(o, parts, now)
		for _, f := range fs {
			if rings(f.To) && now.Sub(f.DialedAt) < 500*time.Millisecond {
				found = f
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d dials in flight, none just started ringing", len(fs))
	})
	return found
}

func callIDs(fs []invariants.InFlight) string {
	var ids []string
	for _, f := range fs {
		ids = append(ids, f.CallID)
	}
	return examples(ids)
}

// examples quotes the first few items of a list.
func examples(items []string) string {
	if len(items) > 3 {
		return strings.Join(items[:3], ", ") + fmt.Sprintf(" and %d more", len(items)-3)
	}
	return strings.Join(items, ", ")
}

// snapshot is a group's stable assignment at one instant.
type snapshot struct {
	at     time.Time
	owners map[string][]int32
}

// watchAssignment records the group's stable assignments of topic every
// 100 ms until stop is called, so a test can tell the last instant the old
// owners held their partitions from the first the new ones did.
func (tp *topology) watchAssignment(ctx context.Context, group, topic string) (stop func() []snapshot) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan []snapshot)
	go func() {
		var snaps []snapshot
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if a, err := tp.assignment(ctx, group, topic); err == nil {
				snaps = append(snaps, snapshot{at: time.Now(), owners: a})
			}
			select {
			case <-ctx.Done():
				done <- snaps
				return
			case <-tick.C:
			}
		}
	}()
	return func() []snapshot {
		cancel()
		return <-done
	}
}

// handover finds, in a watch's snapshots, the last instant partitions were
// all still held by from and the first instant they were all held by
// others: the window in which they changed hands.
func handover(snaps []snapshot, from string, partitions []int32) (lastOld, firstNew time.Time, ok bool) {
	for _, s := range snaps {
		held := 0
		for _, p := range partitions {
			if slices.Contains(s.owners[from], p) {
				held++
			}
		}
		switch {
		case held == len(partitions) && firstNew.IsZero():
			lastOld = s.at
		case held == 0 && !lastOld.IsZero() && firstNew.IsZero():
			firstNew = s.at
		}
	}
	return lastOld, firstNew, !lastOld.IsZero() && !firstNew.IsZero()
}
