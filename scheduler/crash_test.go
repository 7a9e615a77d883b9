package scheduler

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// SIGKILL a real scheduler process twice while it releases a 200-contact
// campaign (once in the first wave, once among the retries), restarting it
// each time. The campaign still completes with every contact called, the
// busy ones exactly twice: no attempt is forgotten, and an attempt released
// again after a kill carries the same call id, which the dialer takes once.
func TestSchedulerSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts scheduler processes")
	}
	b := startBroker(t)
	p := newPipeline(t, b)
	regPath := writeRegistry(t)
	var logs testutil.Buffer
	defer func() {
		if t.Failed() {
			t.Logf("scheduler processes' output:\n%s", logs.String())
		}
	}()
	start := func() *exec.Cmd {
		cmd, _ := startChild(t, b, regPath, &logs, "KAFKA_TOPIC_PARTITIONS=3")
		return cmd
	}
	kill := func(cmd *exec.Cmd) {
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
	}

	const contacts = 200
	id := campaignID(3)
	p.send(schemas.TypeCampaignCreated, id, schemas.Campaign{CampaignID: id, WorkspaceID: "ws_a", Name: "crash", CallAgentID: "agent_a",
		Schedule: schemas.CampaignSchedule{Windows: allWeek}, Pacing: schemas.Pacing{CallsPerSecond: 40, MaxConcurrent: 50},
		Retry: schemas.RetryPolicy{Busy: &schemas.RetryRule{DelaySeconds: 1, MaxAttempts: 2}}, Start: true, CreatedAt: time.Now().UTC()})
	for part := range 2 {
		var ks []schemas.Contact
		for i := part * contacts / 2; i < (part+1)*contacts/2; i++ {
			ks = append(ks, schemas.Contact{ContactID: fmt.Sprintf("c%03d", i), To: fmt.Sprintf("+1555010%04d", 1000+i)})
		}
		p.send(schemas.TypeCampaignContacts, id, schemas.CampaignContacts{CampaignID: id, WorkspaceID: "ws_a", UploadID: uploadID,
			Contacts: ks, AddedAt: time.Now().UTC()})
	}

	// The dialer's part: a call ends 100 ms after it is seen, busy on the
	// first attempt of every fifth contact. A call id requested again is a
	// duplicate the dialer would ignore: it is ended once.
	var mu sync.Mutex
	ended := map[string]bool{}
	dialer := func() (requests, distinct int) {
		mu.Lock()
		defer mu.Unlock()
		reqs, at := p.seen()
		ids := map[string]bool{}
		for i, r := range reqs {
			ids[r.CallID] = true
			if ended[r.CallID] || time.Since(at[i]) < 100*time.Millisecond {
				continue
			}
			o := schemas.OutcomeCompleted
			var n int
			_, _ = fmt.Sscanf(r.Campaign.ContactID, "c%d", &n)
			if n%5 == 0 && r.Campaign.Attempt == 1 {
				o = schemas.OutcomeBusy
			}
			p.end(r, o)
			ended[r.CallID] = true
		}
		return len(reqs), len(ids)
	}

	first := start()
	testutil.Eventually(t, 30*time.Second, "the first wave under way", func() bool { n, _ := dialer(); return n >= 60 })
	kill(first)
	atFirst, _ := dialer()
	second := start()
	testutil.Eventually(t, 60*time.Second, "the retries under way", func() bool {
		for _, r := range p.requests() {
			if r.Campaign.Attempt == 2 {
				return true
			}
		}
		_, _ = dialer()
		return false
	})
	kill(second)
	atSecond, _ := dialer()
	start()
	testutil.EventuallyWhy(t, 90*time.Second, "the campaign to complete", func() (bool, string) {
		n, d := dialer()
		evs := p.campaignEvents()
		return len(evs) > 0 && evs[len(evs)-1].Event == schemas.CampaignEventCompleted, fmt.Sprintf("%d requests, %d call ids", n, d)
	})

	attempts := map[string]map[int]string{}
	for _, r := range p.requests() {
		if r.CallID != schemas.CampaignCallID(id, r.Campaign.ContactID, r.Campaign.Attempt) {
			t.Errorf("request %s is not the derived id of %s attempt %d", r.CallID, r.Campaign.ContactID, r.Campaign.Attempt)
		}
		if attempts[r.Campaign.ContactID] == nil {
			attempts[r.Campaign.ContactID] = map[int]string{}
		}
		attempts[r.Campaign.ContactID][r.Campaign.Attempt] = r.CallID
	}
	if len(attempts) != contacts {
		t.Errorf("%d contacts called, want %d", len(attempts), contacts)
	}
	for i := range contacts {
		want := 1
		if i%5 == 0 {
			want = 2
		}
		if got := len(attempts[fmt.Sprintf("c%03d", i)]); got != want {
			t.Errorf("contact c%03d: %d attempts, want %d", i, got, want)
		}
	}
	n, d := dialer()
	evs := p.campaignEvents()
	last := evs[len(evs)-1].Counters
	if last.Contacts != contacts || last.Attempts != contacts+contacts/5 || last.ByState[schemas.ContactDone] != contacts {
		t.Errorf("completed counters %+v, want %d contacts done, %d attempts", last, contacts, contacts+contacts/5)
	}
	started := 0
	for _, e := range evs {
		if e.Event == schemas.CampaignEventStarted {
			started++
		}
	}
	if started != 1 {
		t.Errorf("%d started events, want 1", started)
	}
	t.Logf("killed at %d and %d requests; %d requests written for %d call ids (%d released again after a kill, each a duplicate the dialer ignores)",
		atFirst, atSecond, n, d, n-d)
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// writeRegistry writes the service tests' registry for a child process.
func writeRegistry(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "registry.yaml")
	if err := os.WriteFile(path, []byte(testRegistryYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startChild starts the scheduler in a child process (this test binary in
// SCHEDULER_TEST_CHILD mode) on broker b, writing its output to logs, and
// returns it once it is ready, with its HTTP address. env adds settings.
func startChild(t *testing.T, b *kafkax.Broker, registry string, logs io.Writer, env ...string) (*exec.Cmd, string) {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SCHEDULER_TEST_CHILD=1", "KAFKA_BROKERS="+b.Addr(),
		"KAFKA_REPLICATION_FACTOR=1", "KAFKA_SESSION_TIMEOUT=1s", "DIALSTREAM_REGISTRY="+registry,
		"SCHEDULER_HTTP_ADDR="+addr, "SCHEDULER_MAX_WAKE=200ms")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitReady(t, "http://"+addr)
	return cmd, addr
}
