package quickstart

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/tests/invariants"
	"github.com/dialstream/dialstream/tests/testbin"
)

// A 200-contact CSV campaign end to end, through the whole pipeline `make
// run` starts (embedded broker, ingest, scheduler, dialer, notifier,
// livekit-server, phonesim, the reference agent): 80 callees answer, 40 are
// busy, 40 never answer, 40 are voicemails. The retry policy gives busy and
// voicemail 2 attempts. The campaign must complete with every contact done
// on its outcome, phonesim must have rung each number exactly as often as
// the policy says (280 dials in all), and the webhook receiver must hold,
// verified, one `call.ended` per attempt carrying the campaign, the contact
// and the attempt, and the campaign's own started/completed webhooks with
// counters that match.
func TestCampaignEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole pipeline and places 280 calls")
	}
	reg := campaignRegistry(t)
	receiver := startReceiver(t, reg)
	phonesim := testbin.FreeAddr(t)
	dev := testbin.StartDev(t, map[string]string{"PHONESIM_HTTP_ADDR": phonesim, "DIALSTREAM_REGISTRY": reg})
	base := "http://" + dev.Ingest + "/v1/api"

	kinds := []struct {
		last3, outcome string
		n, dials       int
	}{
		{"001", "completed", 80, 1},
		{"486", "busy", 40, 2},
		{"480", "no_answer", 40, 1},
		{"300", "voicemail", 40, 2},
	}
	var csv strings.Builder
	csv.WriteString("to,contact_id,firstName\n")
	want := map[string]struct {
		outcome string
		dials   int
	}{} // by number
	row := 0
	for _, k := range kinds {
		for i := range k.n {
			number := fmt.Sprintf("+155501%02d%s", i+1, k.last3)
			row++
			fmt.Fprintf(&csv, "%s,c%03d,Guest %d\n", number, row, row)
			want[number] = struct {
				outcome string
				dials   int
			}{k.outcome, k.dials}
		}
	}

	code, b := send(t, http.MethodPost, base+"/campaigns", `{
		"name": "end to end", "call_agent_id": "a1b2c3d4e5f6a7b8c9d0e1f2",
		"callback_url": "http://`+receiver+`/hooks",
		"schedule": {"windows": [{"days": ["mon","tue","wed","thu","fri","sat","sun"], "start": "00:00", "end": "24:00"}],
		             "default_timezone": "America/New_York"},
		"pacing": {"calls_per_second": 4, "max_concurrent": 10},
		"retry": {"busy": {"delay_seconds": 1, "max_attempts": 2}, "voicemail": {"delay_seconds": 1, "max_attempts": 2}}}`)
	if code != http.StatusCreated && code != http.StatusAccepted {
		t.Fatalf("POST campaigns: %d %s", code, b)
	}
	var created struct {
		CampaignID string `json:"campaign_id"`
	}
	if err := json.Unmarshal(b, &created); err != nil || created.CampaignID == "" {
		t.Fatalf("POST campaigns answered %s", b)
	}
	campaign := base + "/campaigns/" + created.CampaignID

	code, b = sendCSV(t, campaign+"/contacts", csv.String())
	var up struct {
		Accepted, Skipped int
		Errors            []json.RawMessage
	}
	if err := json.Unmarshal(b, &up); err != nil || code/100 != 2 || up.Accepted != len(want) || up.Skipped != 0 || len(up.Errors) != 0 {
		t.Fatalf("upload: %d %.2000s; want 200 accepted, none skipped", code, b)
	}
	if code, b := send(t, http.MethodPost, campaign+"/start", ""); code/100 != 2 {
		t.Fatalf("start: %d %s", code, b)
	}

	api := invariants.Client{IngestURL: "http://" + dev.Ingest, APIKey: "dsk_demo_local", WorkspaceID: "ws_demo", HTTP: http.DefaultClient}
	var view invariants.CampaignView
	testutil.EventuallyWhy(t, 8*time.Minute, "the campaign to complete", func() (bool, string) {
		v, err := api.Campaign(t.Context(), created.CampaignID)
		if err != nil {
			return false, err.Error()
		}
		view = v
		return v.Status == "completed", fmt.Sprintf("%s %+v", v.Status, v.Counters)
	})
	c := view.Counters
	if c.Contacts != 200 || c.Attempts != 280 || c.ByState["done"] != 200 || len(c.ByState) != 1 {
		t.Errorf("counters: %d contacts, %d attempts, by state %v; want 200, 280, all done", c.Contacts, c.Attempts, c.ByState)
	}
	for _, k := range kinds {
		if c.ByOutcome[k.outcome] != k.n {
			t.Errorf("counters by outcome %v: want %d %s", c.ByOutcome, k.n, k.outcome)
		}
	}

	// The phone network's side: each number rung as often as its policy says.
	dials := dialsByNumber(t, phonesim)
	total := 0
	for number, w := range want {
		total += dials[number]
		if dials[number] != w.dials {
			t.Errorf("%s (%s) was dialed %d times, want %d", number, w.outcome, dials[number], w.dials)
		}
	}
	if total != 280 || len(dials) != len(want) {
		t.Errorf("phonesim saw %d dials to %d numbers, want 280 to %d", total, len(dials), len(want))
	}

	// Each contact's attempts as the API shows them.
	contacts, err := api.CampaignContacts(t.Context(), created.CampaignID)
	if err != nil {
		t.Fatal(err)
	}
	if len(contacts) != 200 {
		t.Fatalf("GET contacts listed %d contacts, want 200", len(contacts))
	}
	attemptOf := map[string]string{} // call id -> "number attempt"
	for _, ct := range contacts {
		w := want[ct.To]
		if ct.Status != "done" || ct.Outcome != w.outcome || len(ct.Attempts) != w.dials {
			var why []string // how each attempt ended, as GET /v1/api/call says
			for _, a := range ct.Attempts {
				if c, err := api.Call(t.Context(), a.CallID); err == nil {
					why = append(why, fmt.Sprintf("%s: %s by %s: %q", a.CallID, c.Outcome, c.EndedBy, c.Reason))
				}
			}
			t.Errorf("contact %s (%s): %s/%s after attempts %+v, want done/%s after %d; ended %v",
				ct.ContactID, ct.To, ct.Status, ct.Outcome, ct.Attempts, w.outcome, w.dials, why)
		}
		for i, a := range ct.Attempts {
			if a.Attempt != i+1 || a.CallID == "" {
				t.Errorf("contact %s: attempt %d is %+v", ct.ContactID, i+1, a)
			}
			attemptOf[a.CallID] = fmt.Sprintf("%s %s %d %s", ct.To, ct.ContactID, a.Attempt, a.Outcome)
		}
	}

	// The webhooks: one verified call.ended per attempt, with the campaign,
	// the contact, the attempt and the outcome the contact shows.
	hooks := receiverDeliveries(t, receiver)
	ended := map[string]int{}
	var started, completed int
	for _, h := range hooks {
		if !h.Verified {
			t.Errorf("delivery %s (%s) failed verification", h.WebhookID, h.Type)
		}
		var p struct {
			Data struct {
				Counters struct{ Contacts, Attempts int } `json:"counters"`
			} `json:"data"`
		}
		if err := json.Unmarshal(h.Body, &p); err != nil {
			t.Fatalf("webhook body %s: %v", h.Body, err)
		}
		switch h.Type {
		case "campaign.started":
			started++
		case "campaign.completed":
			completed++
			if p.Data.Counters.Contacts != 200 || p.Data.Counters.Attempts != 280 {
				t.Errorf("campaign.completed counters %+v, want 200 contacts, 280 attempts", p.Data.Counters)
			}
		case "call.ended":
			ended[h.CallID]++
		}
	}
	if started != 1 || completed != 1 {
		t.Errorf("campaign webhooks: %d started, %d completed; want 1 each", started, completed)
	}
	for callID, what := range attemptOf {
		if ended[callID] == 0 {
			t.Errorf("no call.ended webhook for %s (%s)", callID, what)
		}
	}
	endedBodies := endedWebhooks(hooks)
	for callID, body := range endedBodies {
		what, ok := attemptOf[callID]
		if !ok {
			t.Errorf("call.ended for %s, a call of no contact's attempts", callID)
			continue
		}
		got := fmt.Sprintf("%s %s %d %s", body.To, body.ContactID, body.Attempt, body.Outcome)
		if body.CampaignID != created.CampaignID || got != what {
			t.Errorf("call.ended of %s says %q of campaign %s, want %q of %s", callID, got, body.CampaignID, what, created.CampaignID)
		}
	}
	if len(endedBodies) != 280 {
		t.Errorf("%d calls have a call.ended webhook, want 280", len(endedBodies))
	}
}

// campaignRegistry writes the dev registry with room for a campaign's pace:
// ws_demo may hold 12 calls at 6 per second (dev: 5 at 2), and an unanswered
// call rings 4 s (dev: 20 s), so 280 calls take minutes, not a quarter hour.
func campaignRegistry(t *testing.T) string {
	return devRegistryWith(t, map[string]string{
		"limits: {max_concurrent_calls: 5, calls_per_second: 2, burst: 5,": "limits: {max_concurrent_calls: 12, calls_per_second: 6, burst: 6,",
		"ringing_timeout: 20s": "ringing_timeout: 4s",
	})
}

// devRegistryWith writes deploy/dev/registry.yaml with each old string
// replaced by its new one, and returns its path. A string the file no
// longer has fails the test, so the registry cannot drift from what the
// test believes it set.
func devRegistryWith(t *testing.T, replace map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testbin.RepoRoot(t), "deploy", "dev", "registry.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for old, new := range replace {
		if !strings.Contains(s, old) {
			t.Fatalf("deploy/dev/registry.yaml no longer has %q; update the test", old)
		}
		s = strings.ReplaceAll(s, old, new)
	}
	path := filepath.Join(t.TempDir(), "registry.yaml")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startReceiver runs `dialstream receiver`, which verifies and keeps every
// delivery (the dev inspector keeps only the last 200), and returns its
// host:port.
func startReceiver(t *testing.T, registry string) string {
	t.Helper()
	addr := testbin.FreeAddr(t)
	cmd := exec.Command(testbin.Binary(t), "receiver")
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"RECEIVER_HTTP_ADDR=" + addr, "DIALSTREAM_REGISTRY=" + registry,
		"DIALSTREAM_DEV_SIP_TRUNK_ID=ST_receiver", "PATH=" + os.Getenv("PATH")}
	testbin.StartProcess(t, "receiver", cmd).WaitReady(t, 30*time.Second, "http://"+addr+"/healthz")
	return addr
}

type hook struct {
	WebhookID string          `json:"webhook_id"`
	Type      string          `json:"type"`
	CallID    string          `json:"call_id"`
	Verified  bool            `json:"verified"`
	Body      json.RawMessage `json:"body"`
}

func receiverDeliveries(t *testing.T, receiver string) []hook {
	t.Helper()
	var out struct {
		Deliveries []hook `json:"deliveries"`
		Dropped    int    `json:"dropped"`
	}
	getJSON(t, "http://"+receiver+"/deliveries", &out)
	if out.Dropped != 0 {
		t.Fatalf("the receiver dropped %d deliveries", out.Dropped)
	}
	return out.Deliveries
}

type endedData struct {
	To         string `json:"to"`
	Outcome    string `json:"outcome"`
	CampaignID string `json:"campaign_id"`
	ContactID  string `json:"contact_id"`
	Attempt    int    `json:"attempt"`
}

// endedWebhooks returns each call's call.ended data (the last one seen; a
// redelivery carries the same data).
func endedWebhooks(hooks []hook) map[string]endedData {
	out := map[string]endedData{}
	for _, h := range hooks {
		if h.Type != "call.ended" {
			continue
		}
		var p struct {
			Data endedData `json:"data"`
		}
		if json.Unmarshal(h.Body, &p) == nil {
			out[h.CallID] = p.Data
		}
	}
	return out
}

// dialsByNumber counts phonesim's dials by the number dialed (E.164).
func dialsByNumber(t *testing.T, phonesim string) map[string]int {
	t.Helper()
	var out struct {
		Dials []struct {
			To string `json:"to"`
		} `json:"dials"`
	}
	getJSON(t, "http://"+phonesim+"/dials", &out)
	n := map[string]int{}
	for _, d := range out.Dials {
		n["+"+strings.TrimPrefix(strings.TrimPrefix(d.To, "tel:"), "+")]++
	}
	return n
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	r, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, r.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v in %.300s", url, err, b)
	}
}

// sendCSV posts a CSV body as ws_demo.
func sendCSV(t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "text/csv")
	req.Header.Set("x-workspace-id", "ws_demo")
	req.Header.Set("Authorization", "Bearer dsk_demo_local")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, b
}

// TestFigureCampaignImport measures the upload and import of 100,000 CSV
// contacts through `dialstream dev` (ingest, the scheduler, the recorder
// and its SQLite file): the upload's own time, and the time until every
// contact is in the call records, read back through the campaign's CSV
// export. A figure, not a check (DIALSTREAM_FIGURES=1); the README's
// campaign figures come from it.
func TestFigureCampaignImport(t *testing.T) {
	if os.Getenv("DIALSTREAM_FIGURES") == "" {
		t.Skip("set DIALSTREAM_FIGURES=1 to measure")
	}
	const contacts = 100_000
	dev := testbin.StartDev(t, nil)
	base := "http://" + dev.Ingest + "/v1/api"
	code, b := send(t, http.MethodPost, base+"/campaigns", `{"name": "import", "call_agent_id": "a1b2c3d4e5f6a7b8c9d0e1f2",
		"schedule": {"windows": [{"days": ["mon"], "start": "10:00", "end": "11:00"}]},
		"pacing": {"calls_per_second": 1, "max_concurrent": 1}}`)
	var created struct {
		CampaignID string `json:"campaign_id"`
	}
	if code/100 != 2 || json.Unmarshal(b, &created) != nil {
		t.Fatalf("POST campaigns: %d %s", code, b)
	}
	campaign := base + "/campaigns/" + created.CampaignID
	start := time.Now()
	code, b = sendCSV(t, campaign+"/contacts", uniqueNumbers(contacts))
	uploaded := time.Since(start)
	var up struct{ Accepted, Skipped int }
	if code != http.StatusOK || json.Unmarshal(b, &up) != nil || up.Accepted != contacts {
		t.Fatalf("upload: %d %.500s", code, b)
	}
	var rows int
	testutil.EventuallyWhy(t, 10*time.Minute, "every contact in the call records", func() (bool, string) {
		code, b := send(t, http.MethodGet, campaign+"/export", "")
		if code != http.StatusOK {
			return false, fmt.Sprintf("%d %.300s", code, b)
		}
		rows = strings.Count(string(b), "\n") - 1
		return rows == contacts, fmt.Sprintf("%d rows exported", rows)
	})
	imported := time.Since(start)
	t.Logf("%d contacts: upload answered in %s (%.0f rows/s); all in the call records after %s (%.0f contacts/s)",
		contacts, uploaded.Round(time.Millisecond), contacts/uploaded.Seconds(), imported.Round(time.Millisecond), contacts/imported.Seconds())
}

// uniqueNumbers is an n-row contacts CSV (n at most 100,000), each row
// its own number of the fictional test range +1 555 01x xxxx.
func uniqueNumbers(n int) string {
	var b strings.Builder
	b.WriteString("to,contact_id,firstName,lastName,metadata.crm_id\n")
	for i := range n {
		fmt.Fprintf(&b, "+155501%05d,crm-%06d,Ada,Lovelace%d,%d\n", i, i, i, i)
	}
	return b.String()
}
