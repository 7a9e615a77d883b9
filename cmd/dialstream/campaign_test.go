package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/ingest"
	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/internal/callrecords/dbtest"
	"github.com/dialstream/dialstream/internal/compliance"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// The CLI against ingest's real handlers (a producer that acknowledges in
// memory, a SQLite call records database): what it sends is what the API
// takes, and what it prints is what the API answered.

const (
	cliKey    = "dsk_cli_test"
	cliAgent  = "a1b2c3d4e5f6a7b8c9d0e1f2"
	otherCLI  = "dsk_cli_other"
	cliWSName = "ws_cli"
)

func cliRegistry(t *testing.T) *registry.Registry {
	t.Helper()
	y := `
workspaces:
  - id: ws_cli
    api_key_sha256: ["` + registry.HashKey(cliKey) + `"]
    limits: {requests_per_second: 1000000}
    compliance: {home_country: US, allowed_countries: [US], calling_hours: {start: "00:00", end: "24:00"}, max_attempts_per_day: unlimited, max_attempts_per_week: unlimited}
  - id: ws_other
    api_key_sha256: ["` + registry.HashKey(otherCLI) + `"]
    limits: {requests_per_second: 1000000}
    compliance: {home_country: US, allowed_countries: [US], calling_hours: {start: "00:00", end: "24:00"}, max_attempts_per_day: unlimited, max_attempts_per_week: unlimited}
agents:
  - {id: ` + cliAgent + `, workspace: ws_cli, livekit_agent_name: demo, sip_trunk_id: ST_x}
`
	r, err := registry.Parse([]byte(y), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// memProducer acknowledges every record and keeps it.
type memProducer struct {
	mu   sync.Mutex
	recs []*kgo.Record
}

func (p *memProducer) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.mu.Lock()
	r.Offset = int64(len(p.recs))
	p.recs = append(p.recs, r)
	p.mu.Unlock()
	promise(r, nil)
}

func (p *memProducer) records(typ string) []*kgo.Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*kgo.Record
	for _, r := range p.recs {
		for _, h := range r.Headers {
			if h.Key == schemas.HeaderType && string(h.Value) == typ {
				out = append(out, r)
			}
		}
	}
	return out
}

// apiServer serves ingest's handler.
func apiServer(t *testing.T) (*httptest.Server, *memProducer) {
	t.Helper()
	sup := compliance.NewTable()
	sup.SetReady()
	p := &memProducer{}
	h, err := ingest.NewHandler(ingest.Config{Registry: cliRegistry(t), Suppressions: sup, Metrics: prometheus.NewRegistry(),
		DatabaseURL: dbtest.URL(t, callrecords.SQLite), Kafka: kafkax.Config{Brokers: []string{"fake:9092"}}}, p)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, p
}

func cliEnv(url string) func(string) string {
	return func(k string) string {
		return map[string]string{envAPIURL: url, envAPIKey: cliKey, envWorkspace: cliWSName}[k]
	}
}

var createdRE = regexp.MustCompile(`campaign ([0-9a-f]{24}) created \(draft\)`)

// create streams the CSV to the contacts route, lists the rows the API
// refused with their row numbers and reasons, and starts the campaign once
// the rows are in; the flags arrive in the campaign as written.
func TestCampaignCreate(t *testing.T) {
	srv, prod := apiServer(t)
	csv := filepath.Join(t.TempDir(), "renewals.csv")
	if err := os.WriteFile(csv, []byte("to,contact_id,firstName\n+15550100001,c-1,Ada\n12ab,c-2,Bob\n+15550100001,c-3,Cy\n+15550100002,c-4,Di\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	err := campaignMain(context.Background(), []string{"create", "--agent", cliAgent, "--csv", csv, "--calls-per-second", "2.5",
		"--window", "Mon-Fri 10:00-19:00", "--window", "sat 11:00-14:00", "--retry", "busy=2,10m", "--timezone", "America/New_York", "--start"},
		cliEnv(srv.URL), &out, &errOut, false)
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out.String(), errOut.String())
	}
	m := createdRE.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no campaign id in %q", out.String())
	}
	id := m[1]
	if want := "campaign " + id + " created (draft)\ncontacts: 2 accepted, 2 skipped\ncampaign " + id + " started\n"; out.String() != want {
		t.Fatalf("stdout %q, want %q", out.String(), want)
	}
	if want := "row 3: (c-2, 12ab) to \"12ab\" is not a phone number; send E.164: +, country code, number, e.g. +12025550123\n" +
		"row 4: (c-3, +15550100001) duplicate number: row 2 of this upload has it\n"; errOut.String() != want {
		t.Fatalf("stderr %q, want %q", errOut.String(), want)
	}

	created := prod.records(schemas.TypeCampaignCreated)
	if len(created) != 1 {
		t.Fatalf("%d campaign.created records", len(created))
	}
	var def schemas.Campaign
	if err := json.Unmarshal(created[0].Value, &def); err != nil {
		t.Fatal(err)
	}
	if def.Name != "renewals" || def.Pacing.CallsPerSecond != 2.5 || def.Pacing.MaxConcurrent != 10 || def.Start ||
		def.Retry.Busy == nil || *def.Retry.Busy != (schemas.RetryRule{DelaySeconds: 600, MaxAttempts: 2}) ||
		def.Schedule.DefaultTimezone != "America/New_York" || len(def.Schedule.Windows) != 2 ||
		strings.Join(def.Schedule.Windows[0].Days, ",") != "mon,tue,wed,thu,fri" || def.Schedule.Windows[1].Days[0] != "sat" {
		t.Fatalf("campaign as written: %+v", def)
	}
	if n := len(prod.records(schemas.TypeCampaignControl)); n != 1 {
		t.Fatalf("%d controls written, want the one start", n)
	}
}

// create refuses bad flags before it writes anything, naming each.
func TestCampaignCreateFlags(t *testing.T) {
	srv, prod := apiServer(t)
	var out, errOut bytes.Buffer
	err := campaignMain(context.Background(), []string{"create", "--window", "Mon-Fry 10:00-19:00", "--retry", "busy=2", "--retry", "declined=2,1m",
		"--csv", "/nonexistent.csv"}, cliEnv(srv.URL), &out, &errOut, false)
	for _, want := range []string{"--agent: required", `--window "Mon-Fry 10:00-19:00": "mon-fry" is not a day`,
		`--retry "busy=2": want OUTCOME=ATTEMPTS,DELAY`, `--retry "declined=2,1m": "declined" is not retryable`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v, want %q", err, want)
		}
	}
	err = campaignMain(context.Background(), []string{"create", "--agent", cliAgent, "--csv", "/nonexistent.csv"}, cliEnv(srv.URL), &out, &errOut, false)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent.csv") {
		t.Errorf("%v", err)
	}
	if len(prod.records(schemas.TypeCampaignCreated)) != 0 {
		t.Fatal("a campaign was created")
	}
	err = campaignMain(context.Background(), []string{"watch", "x"}, func(string) string { return "" }, &out, &errOut, false)
	if err == nil || err.Error() != "campaign watch: DIALSTREAM_API_KEY: required (the workspace's API key; or --api-key-file); --workspace: required (or DIALSTREAM_WORKSPACE)" {
		t.Fatalf("%v", err)
	}
}

// create --watch starts the campaign and watches it (plain lines when
// stdout is not a terminal) until it ends: here a cancel from elsewhere.
func TestCampaignCreateWatchUntilCanceled(t *testing.T) {
	srv, _ := apiServer(t)
	csv := filepath.Join(t.TempDir(), "c.csv")
	if err := os.WriteFile(csv, []byte("to\n+15550100001\n+15550100002\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut := &testutil.Buffer{}, &testutil.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- campaignMain(context.Background(), []string{"create", "--agent", cliAgent, "--csv", csv, "--watch", "--interval", "20ms"},
			cliEnv(srv.URL), out, errOut, false)
	}()
	var id string
	testutil.EventuallyWhy(t, 10*time.Second, "a watch line", func() (bool, string) {
		if m := createdRE.FindStringSubmatch(out.String()); m != nil {
			id = m[1]
		}
		return id != "" && strings.Contains(out.String(), "campaign "+id+" running 0/2 done (0%) | queued 2 | eta "), out.String() + errOut.String()
	})
	var cancelOut bytes.Buffer
	if err := campaignMain(context.Background(), []string{"cancel", id}, cliEnv(srv.URL), &cancelOut, errOut, false); err != nil ||
		cancelOut.String() != "campaign "+id+": cancel written\n" {
		t.Fatalf("%v %q", err, cancelOut.String())
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not end when the campaign was canceled")
	}
	if !strings.HasSuffix(out.String(), "campaign "+id+" canceled: 2 contacts\n") || strings.Count(out.String(), " running ") != 1 {
		t.Fatalf("stdout %q", out.String())
	}
	var got bytes.Buffer
	if err := campaignMain(context.Background(), []string{"get", id}, cliEnv(srv.URL), &got, errOut, false); err != nil ||
		!strings.Contains(got.String(), `"status":"canceled"`) {
		t.Fatalf("get: %v %s", err, got.String())
	}
	// Another workspace's key: the API's 404, as an error.
	err := campaignMain(context.Background(), []string{"watch", id}, func(k string) string {
		return map[string]string{envAPIURL: srv.URL, envAPIKey: otherCLI, envWorkspace: "ws_other"}[k]
	}, out, errOut, false)
	if err == nil || err.Error() != "campaign watch "+id+": 404: campaign "+id+" not found" {
		t.Fatalf("%v", err)
	}
}

// scriptedCampaign answers GET /v1/api/campaigns/:id with each view in
// turn, then the last one for ever.
func scriptedCampaign(t *testing.T, views ...ingest.CampaignView) *httptest.Server {
	t.Helper()
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+cliKey || r.Header.Get("x-workspace-id") != cliWSName {
			w.WriteHeader(401)
			return
		}
		mu.Lock()
		v := views[min(n, len(views)-1)]
		n++
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(ingest.CampaignEnvelope{Status: "success", Campaign: v})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func view(status schemas.CampaignStatus, states map[schemas.ContactStatus]int, outcomes map[schemas.Outcome]int, eta time.Duration) ingest.CampaignView {
	v := ingest.CampaignView{Campaign: schemas.Campaign{CampaignID: "0123456789abcdef01234567", Name: "renewals"}, Status: status,
		Counters: schemas.CampaignCounters{Contacts: 3, ByState: states, ByOutcome: outcomes}}
	if eta > 0 {
		at := time.Now().Add(eta)
		v.EstimatedFinishAt = &at
	}
	return v
}

// watch shows the counts by state and outcome and the API's estimate,
// one line per change when stdout is not a terminal (no escape codes),
// and ends with a summary when the campaign completes; on a terminal the
// same numbers are a redrawn bar.
func TestCampaignWatch(t *testing.T) {
	type S = map[schemas.ContactStatus]int
	type O = map[schemas.Outcome]int
	views := []ingest.CampaignView{
		view(schemas.CampaignRunning, S{"queued": 3}, O{}, 3*time.Second),
		view(schemas.CampaignRunning, S{"done": 2, "calling": 1}, O{"completed": 1, "busy": 1}, 90*time.Second),
		view(schemas.CampaignRunning, S{"done": 2, "calling": 1}, O{"completed": 1, "busy": 1}, 89*time.Second),
		view(schemas.CampaignCompleted, S{"done": 3}, O{"completed": 2, "busy": 1}, 0),
	}
	const id = "0123456789abcdef01234567"
	var out, errOut bytes.Buffer
	if err := campaignMain(context.Background(), []string{"watch", "--interval", "10ms", id}, cliEnv(scriptedCampaign(t, views...).URL), &out, &errOut, false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := []string{
		"campaign " + id + " running 0/3 done (0%) | queued 3 | eta 3s",
		"campaign " + id + " running 2/3 done (66%) | calling 1 | completed 1 busy 1 | eta 1m30s",
		"campaign " + id + " completed: 3 contacts (done 3) | completed 2 busy 1",
	}
	if len(lines) != len(want) || strings.Contains(out.String(), "\x1b") {
		t.Fatalf("stdout:\n%s", out.String())
	}
	for i, w := range want[:2] {
		// A line is "<RFC 3339 time> <progress> | eta <d>"; d counts down
		// from the estimate while the test runs.
		at, rest, _ := strings.Cut(lines[i], " ")
		got, eta, _ := strings.Cut(rest, " | eta ")
		wantLine, wantEta, _ := strings.Cut(w, " | eta ")
		d, err := time.ParseDuration(eta)
		wd, _ := time.ParseDuration(wantEta)
		if _, terr := time.Parse(time.RFC3339, at); terr != nil || got != wantLine || err != nil || d > wd || d < wd-5*time.Second {
			t.Errorf("line %d: %q, want %q", i, lines[i], w)
		}
	}
	if lines[2] != want[2] {
		t.Errorf("summary %q, want %q", lines[2], want[2])
	}

	var tty bytes.Buffer
	if err := campaignMain(context.Background(), []string{"watch", "--interval", "300ms", id}, cliEnv(scriptedCampaign(t, views...).URL), &tty, &errOut, true); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"\x1b[", id + " running", "calling 1 | completed 1 busy 1", "3/3", "100 %", want[2] + "\n"} {
		if !strings.Contains(tty.String(), w) {
			t.Errorf("terminal output lacks %q:\n%q", w, tty.String())
		}
	}
}

// Ctrl-C stops a watch without an error.
func TestCampaignWatchInterrupted(t *testing.T) {
	srv := scriptedCampaign(t, view(schemas.CampaignRunning, map[schemas.ContactStatus]int{"queued": 3}, nil, 0))
	ctx, cancel := context.WithCancel(context.Background())
	out := &testutil.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- campaignMain(ctx, []string{"watch", "--interval", "10ms", "0123456789abcdef01234567"}, cliEnv(srv.URL), out, out, false)
	}()
	testutil.Eventually(t, 5*time.Second, "a line", func() bool { return strings.Contains(out.String(), "queued 3") })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch did not stop")
	}
}

// Windows read as a person writes them.
func TestParseWindow(t *testing.T) {
	for in, want := range map[string]string{
		"Mon-Fri 10:00-19:00":   "mon,tue,wed,thu,fri 10:00-19:00",
		"sat,sun 11:00-15:00":   "sat,sun 11:00-15:00",
		"Fri-Mon 09:00-24:00":   "fri,sat,sun,mon 09:00-24:00",
		"mon,Mon-Tue 0:00-1:00": "",
		"Mon-Fri":               "",
		"Xyz 10:00-11:00":       "",
	} {
		w, err := parseWindow(in)
		got := strings.Join(w.Days, ",") + " " + w.Start + "-" + w.End
		if (want == "") != (err != nil) || (err == nil && got != want) {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
}

// create sends an Idempotency-Key, and on a transient error (here a 503)
// sends the create again under the same key; an error that is the
// request's own (422) is not sent again.
func TestCampaignCreateRetriesWithSameKey(t *testing.T) {
	const id = "0123456789abcdef01234567"
	for _, tc := range []struct {
		name     string
		first    int
		requests int
		fails    bool
	}{
		{"503 then 201", http.StatusServiceUnavailable, 2, false},
		{"422", http.StatusUnprocessableEntity, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var keys []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != "POST" || r.URL.Path != "/v1/api/campaigns" {
					t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
					http.NotFound(w, r)
					return
				}
				mu.Lock()
				keys = append(keys, r.Header.Get("Idempotency-Key"))
				n := len(keys)
				mu.Unlock()
				w.Header().Set("Content-Type", "application/json")
				if n == 1 {
					w.WriteHeader(tc.first)
					_, _ = w.Write([]byte(`{"status":"error","message":"not now"}`))
					return
				}
				w.WriteHeader(http.StatusCreated)
				_, _ = w.Write([]byte(`{"campaign_id":"` + id + `","status":"draft","contacts":{"accepted":0,"skipped":0,"errors":[]}}`))
			}))
			t.Cleanup(srv.Close)
			var out, errOut bytes.Buffer
			err := campaignMain(context.Background(), []string{"create", "--agent", cliAgent, "--name", "renewals"}, cliEnv(srv.URL), &out, &errOut, false)
			if (err != nil) != tc.fails {
				t.Fatalf("err %v\n%s%s", err, out.String(), errOut.String())
			}
			mu.Lock()
			defer mu.Unlock()
			if len(keys) != tc.requests {
				t.Fatalf("%d requests, want %d (keys %q)", len(keys), tc.requests, keys)
			}
			if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(keys[0]) {
				t.Fatalf("Idempotency-Key %q, want 32 hex", keys[0])
			}
			for _, k := range keys[1:] {
				if k != keys[0] {
					t.Fatalf("keys %q: a retry under another key", keys)
				}
			}
			if !tc.fails && !strings.HasPrefix(out.String(), "campaign "+id+" created (draft)\n") {
				t.Fatalf("stdout %q", out.String())
			}
		})
	}
}

// An empty --api-key-file is an error before any request, even with
// DIALSTREAM_API_KEY set.
func TestAPIKeyFileEmpty(t *testing.T) {
	var asked atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { asked.Add(1) }))
	t.Cleanup(srv.Close)
	empty := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := campaignMain(context.Background(), []string{"get", "--api-key-file", empty, "0123456789abcdef01234567"}, cliEnv(srv.URL), &out, &out, false)
	if err == nil || !strings.Contains(err.Error(), "--api-key-file: "+empty+" is empty") {
		t.Fatalf("err %v", err)
	}
	if err := tailMain(context.Background(), []string{"--api-key-file", empty}, cliEnv(srv.URL), &out, &out); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Fatalf("tail: err %v", err)
	}
	if asked.Load() != 0 {
		t.Fatalf("%d requests sent", asked.Load())
	}
}

// A watch GET that gets no answer is cut at the poll deadline and counted
// as a transient failure: the watch goes on and sees the campaign end.
func TestCampaignWatchPollDeadline(t *testing.T) {
	var polls atomic.Int64
	done := view(schemas.CampaignCompleted, map[schemas.ContactStatus]int{}, map[schemas.Outcome]int{}, 0)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if polls.Add(1) == 1 {
			<-r.Context().Done() // a proxy that holds the request
			return
		}
		_ = json.NewEncoder(w).Encode(ingest.CampaignEnvelope{Status: "success", Campaign: done})
	}))
	t.Cleanup(srv.Close)
	var out, errOut bytes.Buffer
	cl := &apiClient{base: srv.URL, key: cliKey, workspace: cliWSName, http: &http.Client{}}
	w := watcher{cl: cl, out: &out, errOut: &errOut, interval: 10 * time.Millisecond, pollTimeout: 100 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.watch(ctx, done.CampaignID); err != nil || ctx.Err() != nil {
		t.Fatalf("watch: %v (%v)\n%s", err, ctx.Err(), errOut.String())
	}
	if polls.Load() != 2 || !strings.Contains(errOut.String(), "deadline exceeded") || !strings.Contains(out.String(), "completed") {
		t.Fatalf("%d polls; stdout %q; stderr %q", polls.Load(), out.String(), errOut.String())
	}
}

// Ids and the --campaign value are escaped into the URL, never spliced.
func TestCLIEscapesIDs(t *testing.T) {
	got := make(chan string, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.EscapedPath() + "?" + r.URL.RawQuery
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"status":"error","message":"not found"}`))
	}))
	t.Cleanup(srv.Close)
	var out bytes.Buffer
	_ = campaignMain(context.Background(), []string{"get", "a/b?c"}, cliEnv(srv.URL), &out, &out, false)
	if p := <-got; p != "/v1/api/campaigns/a%2Fb%3Fc?" {
		t.Fatalf("get: %s", p)
	}
	_ = tailMain(context.Background(), []string{"--campaign", "x&campaign_id=y"}, cliEnv(srv.URL), &out, &out)
	if p := <-got; p != "/v1/api/events/stream?campaign_id=x%26campaign_id%3Dy" {
		t.Fatalf("tail: %s", p)
	}
}
