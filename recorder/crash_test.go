package recorder

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/internal/callrecords/dbtest"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A recorder process SIGKILLed while it writes a burst of 2,000 calls and
// 2,000 campaign contacts' states is started again; afterwards every call
// has exactly its five events, each once, in sequence order, and its five
// delivery attempts, and every contact its row; the restarted process
// read not one record that the killed one had written (its position came
// from the database, committed with the rows), and the stored positions
// are the topics' end offsets.
func TestSIGKILLWhileWritingLosesAndDoublesNothing(t *testing.T) {
	for _, engine := range dbtest.Engines {
		t.Run(string(engine), func(t *testing.T) { crashTest(t, engine) })
	}
}

func crashTest(t *testing.T, engine callrecords.Engine) {
	const calls = 2000
	b := startBroker(t)
	cl := producer(t, b)
	createCampaignTopics(t, cl)
	dir := t.TempDir()
	regPath := filepath.Join(dir, "registry.yaml")
	if err := os.WriteFile(regPath, []byte(testRegistryYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	dbURL := dbtest.URL(t, engine)
	ctx := context.Background()
	st, err := callrecords.Open(ctx, dbURL, callrecords.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	var logs syncBuffer
	defer func() {
		if t.Failed() {
			t.Logf("recorder processes' output:\n%s", logs.String())
		}
	}()
	startChild := func() (*exec.Cmd, string) {
		addr := freeAddr(t)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(),
			"RECORDER_TEST_CHILD=1",
			"KAFKA_BROKERS="+b.Addr(),
			"KAFKA_TOPIC_PARTITIONS=3",
			"KAFKA_SESSION_TIMEOUT=1s",
			"DIALSTREAM_REGISTRY="+regPath,
			"DATABASE_URL="+dbURL,
			"RECORDER_HTTP_ADDR="+addr,
			"RECORDER_MAX_BATCH_RECORDS=200",
		)
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
		return cmd, addr
	}
	events := func() int { return count(t, st, `SELECT COUNT(*) FROM call_events`) }
	contacts := func() int { return count(t, st, `SELECT COUNT(*) FROM campaign_contacts`) }

	now := time.Now().UTC()
	var burst []*kgo.Record
	camp := callID(0xc1)
	for i := range calls {
		burst = append(burst, callRecords(t, callID(i), "ws_a", now.Add(time.Duration(i)*time.Millisecond))...)
		id := fmt.Sprintf("k%04d", i)
		burst = append(burst, stateRecord(t, schemas.ContactStateKey(camp, id), schemas.TypeContactState,
			testContact(camp, "ws_a", id, i+1, schemas.ContactQueued, now)))
	}
	first, _ := startChild()
	// The burst goes out as fast as the broker takes it, so the recorder
	// works through a backlog, batch after batch, and the kill lands in the
	// middle of one (a transaction begun, rows written, no commit).
	produced := make(chan error, 1)
	go func() {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		produced <- cl.ProduceSync(pctx, burst...).FirstErr()
	}()
	testutil.Eventually(t, 60*time.Second, "the recorder to have written some of the burst", func() bool { return events() >= 3000 })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	atKill, contactsAtKill := events(), contacts()
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	if atKill >= calls*5 {
		t.Fatalf("the recorder had written all %d events before the kill: the test proves nothing", atKill)
	}
	t.Logf("%s: killed with %d of %d events written", engine, atKill, calls*5)

	_, addr := startChild()
	testutil.EventuallyWhy(t, 3*time.Minute, "the restarted recorder to write the rest", func() (bool, string) {
		e := events()
		d := count(t, st, `SELECT COUNT(*) FROM webhook_deliveries`)
		r := count(t, st, `SELECT COUNT(*) FROM calls WHERE request IS NOT NULL`)
		k := contacts()
		return e == calls*5 && d == calls*5 && r == calls && k == calls, fmt.Sprintf("%d events, %d attempts, %d requests, %d contacts", e, d, r, k)
	})

	// Each call: five events, sequences 1..5, none twice; five attempts.
	rows, err := st.DB().QueryContext(ctx, `SELECT c.call_id, COUNT(e.sequence), MIN(e.sequence), MAX(e.sequence), COUNT(DISTINCT e.event_id)
		FROM calls c JOIN call_events e ON e.call_id = c.call_id WHERE c.visible = 1 AND c.request IS NOT NULL GROUP BY c.call_id`)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var id string
		var cnt, lo, hi, ids int
		if err := rows.Scan(&id, &cnt, &lo, &hi, &ids); err != nil {
			t.Fatal(err)
		}
		if cnt != 5 || lo != 1 || hi != 5 || ids != 5 {
			t.Errorf("call %s: %d events, sequences %d..%d, %d ids", id, cnt, lo, hi, ids)
		}
		n++
	}
	rows.Close()
	if n != calls {
		t.Fatalf("%d complete calls, want %d", n, calls)
	}
	for _, i := range []int{0, 777, calls - 1} { // as the API reads them: in sequence order
		if got := eventsOf(t, st, "ws_a", callID(i)); fmt.Sprint(got) != fmt.Sprint(wantSeqs) {
			t.Fatalf("call %d events %v", i, got)
		}
	}
	if d := count(t, st, `SELECT COUNT(*) FROM (SELECT call_id FROM webhook_deliveries GROUP BY call_id HAVING COUNT(*) <> 5) x`); d != 0 {
		t.Fatalf("%d calls without exactly 5 delivery attempts", d)
	}

	// Nothing the killed process wrote was read again, and the positions
	// are at the end of every partition.
	testutil.EventuallyWhy(t, 10*time.Second, "the restarted recorder's counts", func() (bool, string) {
		written, err1 := scrape(addr, `dialstream_recorder_records_total{result="written",topic="events"}`)
		skipped, err2 := scrape(addr, `dialstream_recorder_records_total{result="skipped",topic="events"}`)
		// A contact's state read again would be written again (a row
		// replaced by itself): the count of writes shows a re-read.
		states, err3 := scrape(addr, `dialstream_recorder_records_total{result="written",topic="campaign_state"}`)
		return err1 == nil && err2 == nil && err3 == nil && written == float64(calls*5-atKill) && skipped == 0 && states == float64(calls-contactsAtKill),
			fmt.Sprintf("events written %v (want %d), skipped %v (want 0), contact states written %v (want %d), %v %v %v",
				written, calls*5-atKill, skipped, states, calls-contactsAtKill, err1, err2, err3)
	})
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, consumedTopics...)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := st.Offsets(ctx, DefaultGroupID)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 && stored[o.Topic][o.Partition] != o.Offset {
			t.Errorf("%s/%d: stored offset %d, end %d", o.Topic, o.Partition, stored[o.Topic][o.Partition], o.Offset)
		}
	})
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
