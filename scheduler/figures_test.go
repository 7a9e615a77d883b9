package scheduler

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/testutil"

	"github.com/dialstream/dialstream/schemas"
)

// TestFigureMemory measures the heap the campaign model (machine.go, due.go)
// holds for 1,000,000 contacts across 10 campaigns, each contact with two
// dynamic variables and a small metadata object, as a CSV upload makes
// them. It is a figure, not a check: SCHEDULER_FIGURES=1 runs it, and
// docs/architecture.md ("Campaigns and scheduled calls") has the result.
func TestFigureMemory(t *testing.T) {
	if os.Getenv("SCHEDULER_FIGURES") == "" {
		t.Skip("set SCHEDULER_FIGURES=1 to measure")
	}
	const campaigns, perCampaign = 10, 100_000
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	all := make([]*campaign, 0, campaigns)
	for ci := range campaigns {
		cmd := testCampaignCmd(true)
		cmd.CampaignID = fmt.Sprintf("%024x", ci+1)
		c, _ := applyCreated(nil, cmd)
		for base := 0; base < perCampaign; base += schemas.MaxContactsPerRecord {
			ks := make([]schemas.Contact, 0, schemas.MaxContactsPerRecord)
			for i := base; i < base+schemas.MaxContactsPerRecord; i++ {
				ks = append(ks, schemas.Contact{
					ContactID: fmt.Sprintf("crm-%07d", i), To: fmt.Sprintf("+1202%07d", i), Row: i + 2,
					DynamicVariables: map[string]string{"firstName": "Ada", "lastName": fmt.Sprintf("Lovelace%d", i)},
					Metadata:         []byte(fmt.Sprintf(`{"crm_id":%d}`, i)),
				})
			}
			cc := contactsCmd(t0, ks...)
			cc.CampaignID = cmd.CampaignID
			c.applyContacts(cc)
		}
		all = append(all, c)
	}
	took := time.Since(start)
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
	t.Logf("%d contacts in %d campaigns: heap %.0f MiB (%.0f bytes per contact), applied in %s (%.0f contacts/s)",
		campaigns*perCampaign, campaigns, heap, heap*(1<<20)/float64(campaigns*perCampaign), took.Round(time.Millisecond),
		float64(campaigns*perCampaign)/took.Seconds())
	runtime.KeepAlive(all)
}

// TestFigureReleaseRate measures how close the service's release rate comes
// to the pacing it is set to: three campaigns at 10, 25 and 50 calls/s
// through the service and the embedded broker, each call ended as soon as
// it is seen (max_concurrent never binds), for 20 s. A figure, not a check
// (SCHEDULER_FIGURES=1); the test fails only if a campaign ran over its
// rate in any one-second window.
func TestFigureReleaseRate(t *testing.T) {
	if os.Getenv("SCHEDULER_FIGURES") == "" {
		t.Skip("set SCHEDULER_FIGURES=1 to measure")
	}
	b := startBroker(t)
	p := newPipeline(t, b)
	startScheduler(t, b, nil)
	rates := []float64{10, 25, 50}
	const run = 20 * time.Second
	for i, r := range rates {
		id := campaignID(100 + i)
		p.send(schemas.TypeCampaignCreated, id, schemas.Campaign{CampaignID: id, WorkspaceID: "ws_a", Name: "rate", CallAgentID: "agent_a",
			Schedule: schemas.CampaignSchedule{Windows: allWeek}, Pacing: schemas.Pacing{CallsPerSecond: r, MaxConcurrent: 10_000},
			CreatedAt: time.Now().UTC()})
		n := int(r) * 30
		for base := 0; base < n; base += schemas.MaxContactsPerRecord {
			var ks []schemas.Contact
			for j := base; j < min(n, base+schemas.MaxContactsPerRecord); j++ {
				ks = append(ks, schemas.Contact{ContactID: fmt.Sprintf("c%05d", j), To: fmt.Sprintf("+1202%03d%04d", 200+i, j)})
			}
			p.send(schemas.TypeCampaignContacts, id, schemas.CampaignContacts{CampaignID: id, WorkspaceID: "ws_a", UploadID: uploadID,
				Contacts: ks, AddedAt: time.Now().UTC()})
		}
	}
	start := time.Now()
	for i := range rates {
		id := campaignID(100 + i)
		p.send(schemas.TypeCampaignControl, id, schemas.CampaignControl{CampaignID: id, WorkspaceID: "ws_a", Action: schemas.ActionStart, RequestedAt: time.Now().UTC()})
	}
	ended := map[string]bool{}
	deadline := time.NewTimer(run)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-deadline.C:
			done = true
		case <-tick.C:
			for _, r := range p.requests() {
				if !ended[r.CallID] {
					p.end(r, schemas.OutcomeCompleted)
					ended[r.CallID] = true
				}
			}
		}
	}
	elapsed := time.Since(start)
	by := map[string][]time.Time{}
	for _, r := range p.requests() {
		by[r.Campaign.CampaignID] = append(by[r.Campaign.CampaignID], r.RequestedAt)
	}
	for i, rate := range rates {
		at := by[campaignID(100+i)]
		if len(at) < 2 {
			t.Fatalf("campaign at %v/s released %d", rate, len(at))
		}
		first, last := at[0], at[len(at)-1]
		got := float64(len(at)-1) / last.Sub(first).Seconds()
		assertPaced(t, at, int(rate))
		t.Logf("pacing %5.1f calls/s: %4d releases in %.1f s, measured %.2f calls/s (%.1f%% of the pacing); first release %.0f ms after start",
			rate, len(at), last.Sub(first).Seconds(), got, 100*got/rate, first.Sub(start).Seconds()*1000)
	}
	t.Logf("run %s", elapsed.Round(time.Millisecond))
}

// TestFigureServiceMemory measures a running scheduler process holding
// 1,000,000 contacts in 10 draft campaigns, as uploads put them on the
// commands topic (500 contacts a record, each contact with two dynamic
// variables and a small metadata object): how long it takes to apply them
// and write their state, then its RSS and Go heap; then it is killed and
// restarted, and the time to load the state back is measured with the RSS
// after the load. A figure, not a check (SCHEDULER_FIGURES=1);
// docs/architecture.md has the result.
func TestFigureServiceMemory(t *testing.T) {
	if os.Getenv("SCHEDULER_FIGURES") == "" {
		t.Skip("set SCHEDULER_FIGURES=1 to measure")
	}
	const campaigns, perCampaign = 10, 100_000
	b := startBroker(t)
	p := newPipeline(t, b)
	reg := writeRegistry(t)
	var logs testutil.Buffer
	defer func() {
		if t.Failed() {
			t.Logf("scheduler output:\n%s", logs.String())
		}
	}()
	// SCHEDULER_FIGURES_GOMEMLIMIT sets the child's GOMEMLIMIT (e.g.
	// 1100MiB), to measure what a container memory limit holds it to.
	env := []string{"KAFKA_TOPIC_PARTITIONS=3", "GOMEMLIMIT=" + os.Getenv("SCHEDULER_FIGURES_GOMEMLIMIT")}
	if os.Getenv("SCHEDULER_FIGURES_GOMEMLIMIT") == "" {
		env = env[:1]
	}
	cmd, addr := startChild(t, b, reg, &logs, env...)
	idle := procStatus(t, cmd.Process.Pid)

	start := time.Now()
	ctx := context.Background()
	for ci := range campaigns {
		id := campaignID(1000 + ci)
		p.send(schemas.TypeCampaignCreated, id, schemas.Campaign{CampaignID: id, WorkspaceID: "ws_a", Name: "memory", CallAgentID: "agent_a",
			Schedule: schemas.CampaignSchedule{Windows: allWeek}, Pacing: schemas.Pacing{CallsPerSecond: 10, MaxConcurrent: 10},
			CreatedAt: time.Now().UTC()})
		for base := 0; base < perCampaign; base += schemas.MaxContactsPerRecord {
			ks := make([]schemas.Contact, 0, schemas.MaxContactsPerRecord)
			for i := base; i < base+schemas.MaxContactsPerRecord; i++ {
				ks = append(ks, schemas.Contact{
					ContactID: fmt.Sprintf("crm-%07d", i), To: fmt.Sprintf("+1202%d%06d", ci, i), Row: i + 2,
					DynamicVariables: map[string]string{"firstName": "Ada", "lastName": fmt.Sprintf("Lovelace%d", i)},
					Metadata:         []byte(fmt.Sprintf(`{"crm_id":%d}`, i)),
				})
			}
			r, err := schemas.NewRecord(schemas.TopicCampaignCommands, id, schemas.Meta{Type: schemas.TypeCampaignContacts, Source: "/test", Subject: id},
				schemas.CampaignContacts{CampaignID: id, WorkspaceID: "ws_a", UploadID: uploadID, Contacts: ks, AddedAt: time.Now().UTC()})
			if err != nil {
				t.Fatal(err)
			}
			p.cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
				if err != nil {
					t.Error(err)
				}
			})
		}
	}
	if err := p.cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	produced := time.Since(start)
	held := func() float64 {
		return sumMetric(t, "http://"+addr+"/metrics", "dialstream_scheduler_contacts")
	}
	testutil.EventuallyWhy(t, 10*time.Minute, "the scheduler to hold every contact", func() (bool, string) {
		n := held()
		return n == campaigns*perCampaign, fmt.Sprintf("%.0f contacts", n)
	})
	applied := time.Since(start)
	// Let the last state writes drain before measuring.
	time.Sleep(2 * time.Second)
	full := procStatus(t, cmd.Process.Pid)
	heap := sumMetric(t, "http://"+addr+"/metrics", "go_memstats_heap_inuse_bytes")
	t.Logf("idle: RSS %.0f MiB", idle.rss)
	t.Logf("%d contacts in %d campaigns: produced in %s, held by the scheduler after %s (%.0f contacts/s)",
		campaigns*perCampaign, campaigns, produced.Round(time.Millisecond), applied.Round(time.Millisecond),
		float64(campaigns*perCampaign)/applied.Seconds())
	t.Logf("holding them: RSS %.0f MiB (peak %.0f MiB), Go heap in use %.0f MiB, %.0f bytes of RSS per contact",
		full.rss, full.hwm, heap/(1<<20), (full.rss-idle.rss)*(1<<20)/float64(campaigns*perCampaign))

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	restart := time.Now()
	cmd, addr = startChild(t, b, reg, &logs, env...)
	testutil.EventuallyWhy(t, 10*time.Minute, "the restarted scheduler to load every contact", func() (bool, string) {
		n := sumMetric(t, "http://"+addr+"/metrics", "dialstream_scheduler_contacts")
		return n == campaigns*perCampaign, fmt.Sprintf("%.0f contacts", n)
	})
	loaded := time.Since(restart)
	after := procStatus(t, cmd.Process.Pid)
	t.Logf("after SIGKILL and restart: state loaded in %s, RSS %.0f MiB (peak %.0f MiB)", loaded.Round(time.Millisecond), after.rss, after.hwm)
}

type memStatus struct{ rss, hwm float64 } // MiB

// procStatus reads VmRSS and VmHWM of a process from /proc.
func procStatus(t *testing.T, pid int) memStatus {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	var m memStatus
	for _, line := range strings.Split(string(b), "\n") {
		var kb float64
		if _, err := fmt.Sscanf(line, "VmRSS: %f kB", &kb); err == nil {
			m.rss = kb / 1024
		}
		if _, err := fmt.Sscanf(line, "VmHWM: %f kB", &kb); err == nil {
			m.hwm = kb / 1024
		}
	}
	return m
}

// sumMetric sums every sample of a metric family at a /metrics URL.
func sumMetric(t *testing.T, url, name string) float64 {
	t.Helper()
	r, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	sum := 0.0
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		var v float64
		if _, err := fmt.Sscanf(rest[strings.LastIndexByte(rest, ' ')+1:], "%g", &v); err == nil {
			sum += v
		}
	}
	return sum
}
