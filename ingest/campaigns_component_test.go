package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/schemas"
)

// Component tests of the campaign write routes and scheduled calls: the
// handler writes through a real franz-go client (acks=all, idempotent) to
// the embedded broker, and each test reads back what landed on the topics.
// The call records' campaign tables are a fake (fakeCampaigns) until the
// records store has them.

// fakeCampaigns stands in for the campaign tables of the call records.
type fakeCampaigns struct {
	mu        sync.Mutex
	campaigns map[string]*schemas.CampaignState
	numbers   map[string]map[string]string // campaign -> number -> contact id
	asked     atomic.Int64                 // CampaignNumbers calls
}

func (f *fakeCampaigns) Campaign(_ context.Context, ws, id string) (*schemas.CampaignState, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.campaigns[id]
	if !ok || c.Campaign.WorkspaceID != ws {
		return nil, false, nil
	}
	cp := *c
	return &cp, true, nil
}

func (f *fakeCampaigns) CampaignNumbers(_ context.Context, ws, id string, numbers []string) (map[string]string, error) {
	f.asked.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	if c, ok := f.campaigns[id]; ok && c.Campaign.WorkspaceID != ws {
		return out, nil
	}
	for _, n := range numbers {
		if cid, ok := f.numbers[id][n]; ok {
			out[n] = cid
		}
	}
	return out, nil
}

// kafkaEnv is a handler writing to a fresh embedded broker, with fake
// campaign tables.
type kafkaEnv struct {
	*testEnv
	addr  string
	camps *fakeCampaigns
}

func newKafkaEnv(t testing.TB, mod ...func(*Config)) *kafkaEnv {
	t.Helper()
	b, err := kafkax.StartBroker(kafkax.BrokerConfig{Listen: "127.0.0.1:0", Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	env := newTestEnv(t, append([]func(*Config){func(c *Config) { c.Kafka.ProduceTimeout = 10 * time.Second }}, mod...)...)
	opts, err := kafkax.Config{Brokers: []string{b.Addr()}, ClientID: "ingest-campaign-test"}.ClientOpts()
	if err != nil {
		t.Fatal(err)
	}
	// The scheduler creates the commands topic in production (kafkax.Topics);
	// here the broker does, on first use.
	cl, err := kgo.NewClient(append(opts, kgo.AllowAutoTopicCreation())...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	env.hd.p = cl
	fc := &fakeCampaigns{campaigns: map[string]*schemas.CampaignState{}, numbers: map[string]map[string]string{}}
	env.hd.campaigns = fc
	return &kafkaEnv{testEnv: env, addr: b.Addr(), camps: fc}
}

// commands is every record of the commands topic, in partition order
// (one campaign's records share a partition, so they keep their order).
func (e *kafkaEnv) commands(t testing.TB) []*kgo.Record {
	t.Helper()
	recs := readTopicRecords(t.(*testing.T), e.addr, schemas.TopicCampaignCommands)
	slices.SortStableFunc(recs, func(a, b *kgo.Record) int {
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return int(a.Offset - b.Offset)
	})
	return recs
}

// createCommandsTopic creates the commands topic on addr's broker, as the
// scheduler does in production (ingest's Run does not create it).
func createCommandsTopic(t *testing.T, addr string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 3, -1, nil, schemas.TopicCampaignCommands); err != nil {
		t.Fatal(err)
	}
}

func ceType(r *kgo.Record) string { return kafkax.Header(r, schemas.HeaderType) }

// contactsOf decodes every contacts record of recs, in order.
func contactsOf(t testing.TB, recs []*kgo.Record) []schemas.Contact {
	t.Helper()
	var out []schemas.Contact
	for _, r := range recs {
		if ceType(r) != schemas.TypeCampaignContacts {
			continue
		}
		ev, err := schemas.Decode(r)
		if err != nil {
			t.Fatalf("contacts record does not decode: %v", err)
		}
		var cc schemas.CampaignContacts
		mustUnmarshal(t, ev.Data, &cc)
		if len(cc.Contacts) == 0 || len(cc.Contacts) > schemas.MaxContactsPerRecord {
			t.Fatalf("a record of %d contacts", len(cc.Contacts))
		}
		out = append(out, cc.Contacts...)
	}
	return out
}

const campaignBase = `"name":"renewals","call_agent_id":"` + demoAgent + `","callback_url":"https://example.com/hooks",` +
	`"schedule":{"windows":[{"days":["mon","tue","wed","thu","fri"],"start":"10:00","end":"19:00"}],"default_timezone":"America/New_York"},` +
	`"pacing":{"calls_per_second":2,"max_concurrent":10},"retry":{"busy":{"delay_seconds":600,"max_attempts":3}}`

// create POSTs a campaign and returns its answer.
func (e *kafkaEnv) create(t testing.TB, extra string) CampaignCreated {
	t.Helper()
	w := e.do(t, req{path: "/v1/api/campaigns", body: "{" + campaignBase + extra + "}"})
	if w.Code != 201 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	var got CampaignCreated
	mustUnmarshal(t, w.Body.Bytes(), &got)
	if !callIDRE.MatchString(got.CampaignID) {
		t.Fatalf("campaign id %q", got.CampaignID)
	}
	return got
}

func TestCampaignCreateWithInlineContacts(t *testing.T) {
	e := newKafkaEnv(t)
	got := e.create(t, `,"start":true,"contacts":[`+
		`{"to":"+1 202 555 0123","dynamic_variables":{"firstName":"Ada"},"metadata":{"crm":7}},`+
		`{"to":"12ab"},`+
		`{"to":"+12025550123","contact_id":"again"},`+
		`{"to":"+15550100002","contact_id":"c-2","timezone":"Europe/Berlin"}]`)
	want := CampaignCreated{CampaignID: got.CampaignID, Status: schemas.CampaignRunning, Contacts: ContactsReport{Accepted: 2, Skipped: 2,
		Errors: []ContactError{
			{Row: 2, To: "12ab", Reason: `to "12ab" is not a phone number; send E.164: +, country code, number, e.g. +12025550123`},
			{Row: 3, ContactID: "again", To: "+12025550123", Reason: "duplicate number: row 1 of this upload has it"},
		}}}
	assertJSON(t, []byte(mustJSON(t, got)), mustJSON(t, want))

	recs := e.commands(t)
	if len(recs) != 2 || ceType(recs[0]) != schemas.TypeCampaignCreated || ceType(recs[1]) != schemas.TypeCampaignContacts {
		t.Fatalf("records: %d %v", len(recs), recs)
	}
	for _, r := range recs {
		if string(r.Key) != got.CampaignID {
			t.Fatalf("record key %q, want the campaign id", r.Key)
		}
	}
	ev, err := schemas.Decode(recs[0])
	if err != nil {
		t.Fatal(err)
	}
	var def schemas.Campaign
	mustUnmarshal(t, ev.Data, &def)
	if def.CampaignID != got.CampaignID || def.WorkspaceID != "ws_demo" || def.Name != "renewals" || !def.Start ||
		def.Pacing.CallsPerSecond != 2 || def.Retry.Busy == nil || def.Retry.Busy.MaxAttempts != 3 ||
		def.Schedule.Windows[0].End != "19:00" || def.CallbackURL != "https://example.com/hooks" {
		t.Fatalf("campaign.created: %+v", def)
	}
	cs := contactsOf(t, recs)
	wantContacts := []schemas.Contact{
		{ContactID: "+12025550123", To: "+12025550123", Row: 1, DynamicVariables: map[string]string{"firstName": "Ada"}, Metadata: json.RawMessage(`{"crm":7}`)},
		{ContactID: "c-2", To: "+15550100002", Row: 4, Timezone: "Europe/Berlin"},
	}
	assertJSON(t, []byte(mustJSON(t, cs)), mustJSON(t, wantContacts))
}

func TestCampaignCreateRefusalsWriteNothing(t *testing.T) {
	e := newKafkaEnv(t)
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	base := func(replace, with string) string {
		return "{" + strings.Replace(campaignBase, replace, with, 1) + "}"
	}
	for _, tc := range []struct {
		body  string
		code  int
		field string
	}{
		{`{"call_agent_id":"` + demoAgent + `"}`, 422, "name"},
		{base(`"name":"renewals"`, `"name":""`), 422, "name"},
		{base(`"callback_url":"https://example.com/hooks"`, `"callback_url":"ftp://x"`), 422, "callback_url"},
		{base(`"start":"10:00"`, `"start":"25:00"`), 422, "schedule.windows[0].start"},
		{base(`"end":"19:00"`, `"end":"09:00"`), 422, "schedule.windows[0].end"},
		{base(`["mon",`, `["mon","mon",`), 422, "schedule.windows[0].days"},
		{base(`"default_timezone":"America/New_York"`, `"default_timezone":"Mars/Olympus"`), 422, "schedule.default_timezone"},
		{base(`"default_timezone":"America/New_York"`, `"end_at":"2020-01-01T00:00:00Z"`), 422, "schedule.end_at"},
		{base(`"default_timezone":"America/New_York"`, `"start_at":"`+future+`","end_at":"`+future+`"`), 422, "schedule.end_at"},
		{base(`"default_timezone":"America/New_York"`, `"timezone":"UTC"`), 422, "schedule"},
		{base(`"calls_per_second":2`, `"calls_per_second":0`), 422, "pacing.calls_per_second"},
		{base(`"max_concurrent":10`, `"max_concurrent":"ten"`), 422, "pacing"},
		{base(`"max_attempts":3`, `"max_attempts":0`), 422, "retry.busy.max_attempts"},
		{base(`"busy"`, `"declined"`), 422, "retry"},
		{base(`"name":"renewals"`, `"name":"renewals","colour":"red"`), 422, "colour"},
		{base(`"name":"renewals"`, `"name":"renewals","start":"yes"`), 422, "start"},
		{base(`"name":"renewals"`, `"name":"renewals","contacts":{}`), 422, "contacts"},
		{base(`"call_agent_id":"`+demoAgent+`"`, `"call_agent_id":"`+otherAgent+`"`), 404, "call_agent_id"},
		{`[]`, 400, ""},
	} {
		w := e.do(t, req{path: "/v1/api/campaigns", body: tc.body})
		var er ErrorResponse
		_ = json.Unmarshal(w.Body.Bytes(), &er)
		if w.Code != tc.code || er.Status != "error" || (tc.field != "" && (len(er.Errors) == 0 || er.Errors[0].Field != tc.field)) {
			t.Errorf("%s\n-> %d %s; want %d naming %q", tc.body, w.Code, w.Body, tc.code, tc.field)
		}
	}
	if recs := e.commands(t); len(recs) != 0 {
		t.Fatalf("refusals wrote %d records", len(recs))
	}
}

// A contact no call could ever reach under the workspace's rules (on the
// do-not-call list, a destination the workspace may not call) is reported
// at upload with the rule, like POST /v1/api/call refuses it; calling hours
// are the release's business, so a number outside them now is imported.
func TestCampaignUploadReportsNumbersTheRulesRefuse(t *testing.T) {
	dnc := readyTable()
	if err := dnc.Add("ws_demo", "+15550100005", schemas.ReasonOptOut, time.Now()); err != nil {
		t.Fatal(err)
	}
	e := newKafkaEnv(t, func(c *Config) { c.Suppressions = dnc })
	camp := e.create(t, "")
	csv := "to,contact_id\n" +
		"+15550100001,c-1\n" + // 2: good
		"+15550100005,c-2\n" + // 3: on the do-not-call list
		"+19005550123,c-3\n" + // 4: premium rate
		"+5352123456,c-4\n" + // 5: Cuba, not an allowed country
		"+12124567890,c-5\n" // 6: New York: hours are checked at release
	w := e.do(t, req{path: "/v1/api/campaigns/" + camp.CampaignID + "/contacts", contentType: "text/csv", body: csv})
	if w.Code != 200 {
		t.Fatalf("upload: %d %s", w.Code, w.Body)
	}
	var got ContactsUploaded
	mustUnmarshal(t, w.Body.Bytes(), &got)
	if got.Accepted != 2 || got.Skipped != 3 || len(got.Errors) != 3 {
		t.Fatalf("report %s, want 2 accepted and rows 3, 4, 5 refused", w.Body)
	}
	for i, want := range []struct {
		row          int
		rule, reason string
	}{{3, "suppressed", "do-not-call list (opt_out"}, {4, "destination_not_allowed", "PREMIUM"}, {5, "destination_not_allowed", "CU"}} {
		ce := got.Errors[i]
		if ce.Row != want.row || !strings.Contains(ce.Reason, "refused by compliance rule "+want.rule) ||
			!strings.Contains(strings.ToUpper(ce.Reason), strings.ToUpper(want.reason)) {
			t.Errorf("error %d: %+v, want row %d refused by %s mentioning %q", i, ce, want.row, want.rule, want.reason)
		}
	}
	var sent []string
	for _, c := range contactsOf(t, e.commands(t)) {
		sent = append(sent, c.To)
	}
	if !slices.Equal(sent, []string{"+15550100001", "+12124567890"}) {
		t.Fatalf("contacts written %v, want only the two callable ones", sent)
	}
}

// A CSV upload with a bad row of each kind imports the rest and reports
// each bad row with its line number and reason.
func TestCampaignCSVUploadReportsBadRows(t *testing.T) {
	e := newKafkaEnv(t)
	camp := e.create(t, "")
	// The records already have one number of the campaign.
	e.camps.numbers[camp.CampaignID] = map[string]string{"+15550100007": "earlier"}
	csv := "to,contact_id,timezone,firstName,metadata.crm_id\n" + // line 1: the header
		"+15550100001,c-1,America/Chicago,Ada,42\n" + // 2: good
		"not a number,c-2,,Bob,\n" + // 3: bad number
		"+15550100003,c-3,,Cy,,surplus\n" + // 4: more fields than the header
		"+1 555 010 0001,c-4,,Dee,\n" + // 5: the number of row 2 again
		"+15550100007,c-5,,Eve,\n" + // 6: already in the campaign
		"+15550100008,c-6,,F\xffrank,\n" + // 7: invalid UTF-8
		"+15550100009,c-7,Mars/Olympus,Gus,\n" + // 8: bad timezone
		"+15550100010,c-1,,Hal,\n" + // 9: contact_id of row 2 again
		",,,,\n" + // 10: a blank row, passed over
		"+15550100011,,,\"Ida\nMay\",7\n" + // 11 (and 12): a cell with a line break; contact_id defaults to the number
		"+15550100012,c-12,,Jo,\n" // 13: good
	w := e.do(t, req{path: "/v1/api/campaigns/" + camp.CampaignID + "/contacts", contentType: "text/csv", body: csv})
	if w.Code != 200 {
		t.Fatalf("upload: %d %s", w.Code, w.Body)
	}
	var got ContactsUploaded
	mustUnmarshal(t, w.Body.Bytes(), &got)
	want := ContactsReport{Accepted: 3, Skipped: 7, Errors: []ContactError{
		{Row: 3, ContactID: "c-2", To: "not a number", Reason: `to "not a number" is not a phone number; send E.164: +, country code, number, e.g. +12025550123`},
		{Row: 4, To: "+15550100003", Reason: "unknown column: the row has 6 fields, the header names 5"},
		{Row: 5, ContactID: "c-4", To: "+15550100001", Reason: "duplicate number: row 2 of this upload has it"},
		{Row: 7, To: "+15550100008", Reason: "invalid UTF-8: save the file as CSV UTF-8"},
		{Row: 8, ContactID: "c-7", To: "+15550100009", Reason: `timezone "Mars/Olympus" is not an IANA time zone name, e.g. America/New_York`},
		{Row: 9, ContactID: "c-1", To: "+15550100010", Reason: "duplicate contact_id: row 2 of this upload has it"},
		// Known to the records only when its batch is written: listed last.
		{Row: 6, ContactID: "c-5", To: "+15550100007", Reason: "duplicate number: already in the campaign as contact earlier"},
	}}
	if got.Status != "success" || got.CampaignID != camp.CampaignID || !callIDRE.MatchString(got.UploadID) {
		t.Fatalf("answer %s", w.Body)
	}
	assertJSON(t, []byte(mustJSON(t, got.ContactsReport)), mustJSON(t, want))

	cs := contactsOf(t, e.commands(t))
	wantContacts := []schemas.Contact{
		{ContactID: "c-1", To: "+15550100001", Row: 2, Timezone: "America/Chicago", DynamicVariables: map[string]string{"firstName": "Ada"}, Metadata: json.RawMessage(`{"crm_id":"42"}`)},
		{ContactID: "+15550100011", To: "+15550100011", Row: 11, DynamicVariables: map[string]string{"firstName": "Ida\nMay"}, Metadata: json.RawMessage(`{"crm_id":"7"}`)},
		{ContactID: "c-12", To: "+15550100012", Row: 13, DynamicVariables: map[string]string{"firstName": "Jo"}},
	}
	assertJSON(t, []byte(mustJSON(t, cs)), mustJSON(t, wantContacts))
}

func TestCampaignJSONUpload(t *testing.T) {
	e := newKafkaEnv(t)
	camp := e.create(t, "")
	body := `[{"to":"+15550100001","contact_id":"a"},{"to":"+15550100002","dynamic_variables":{"x":[1]}},` +
		`{"to":"+15550100003","colour":"red"},{"to":5},{"to":"+15550100004","metadata":{"k":"v"}}]`
	w := e.do(t, req{path: "/v1/api/campaigns/" + camp.CampaignID + "/contacts", body: body})
	if w.Code != 200 {
		t.Fatalf("upload: %d %s", w.Code, w.Body)
	}
	var got ContactsUploaded
	mustUnmarshal(t, w.Body.Bytes(), &got)
	if got.Accepted != 2 || got.Skipped != 3 || len(got.Errors) != 3 || got.Errors[0].Row != 2 || got.Errors[1].Row != 3 || got.Errors[2].Row != 4 ||
		!strings.Contains(got.Errors[1].Reason, "unknown field colour") {
		t.Fatalf("answer %s", w.Body)
	}
	cs := contactsOf(t, e.commands(t))
	if len(cs) != 2 || cs[0].ContactID != "a" || cs[1].Row != 5 || string(cs[1].Metadata) != `{"k":"v"}` {
		t.Fatalf("contacts %+v", cs)
	}
}

// A bad header refuses the whole upload; so do an unknown campaign, another
// workspace's, and a campaign that ended. None writes anything.
func TestCampaignUploadRefusals(t *testing.T) {
	e := newKafkaEnv(t)
	camp := e.create(t, "")
	n := len(e.commands(t))
	path := "/v1/api/campaigns/" + camp.CampaignID + "/contacts"
	for _, tc := range []struct {
		r    req
		code int
	}{
		{req{path: path, contentType: "text/csv", body: "number,firstName\n+15550100001,Ada\n"}, 422},
		{req{path: path, contentType: "text/csv", body: "to,first name\n+15550100001,Ada\n"}, 422},
		{req{path: path, contentType: "text/csv", body: "to,to\n+15550100001,+15550100002\n"}, 422},
		{req{path: path, contentType: "text/csv", body: ""}, 422},
		{req{path: path, contentType: "text/plain", body: "to\n+15550100001\n"}, 415},
		{req{path: path, body: `{"to":"+15550100001"}`}, 400},
		{req{path: "/v1/api/campaigns/0123456789abcdef01234567/contacts", contentType: "text/csv", body: "to\n+15550100001\n"}, 404},
		{req{path: "/v1/api/campaigns/nope/contacts", contentType: "text/csv", body: "to\n+15550100001\n"}, 404},
		{req{path: path, contentType: "text/csv", body: "to\n+15550100001\n", key: otherKey, workspace: "ws_other"}, 404},
	} {
		if w := e.do(t, tc.r); w.Code != tc.code {
			t.Errorf("%s %q: %d %s; want %d", tc.r.path, tc.r.body, w.Code, w.Body, tc.code)
		}
	}
	if w := e.do(t, req{path: "/v1/api/campaigns/" + camp.CampaignID + "/cancel"}); w.Code != 202 {
		t.Fatalf("cancel: %d %s", w.Code, w.Body)
	}
	if w := e.do(t, req{path: path, contentType: "text/csv", body: "to\n+15550100001\n"}); w.Code != 409 {
		t.Fatalf("upload to a canceled campaign: %d %s", w.Code, w.Body)
	}
	if got := len(e.commands(t)); got != n+1 {
		t.Fatalf("%d records written, want only the cancel", got-n)
	}
}

func TestCampaignControls(t *testing.T) {
	e := newKafkaEnv(t)
	camp := e.create(t, "")
	other := "/v1/api/campaigns/0123456789abcdef01234567/"
	for _, a := range []string{"start", "pause", "resume", "cancel"} {
		w := e.do(t, req{path: "/v1/api/campaigns/" + camp.CampaignID + "/" + a})
		if w.Code != 202 {
			t.Fatalf("%s: %d %s", a, w.Code, w.Body)
		}
		assertJSON(t, w.Body.Bytes(), `{"status":"success","campaign_id":"`+camp.CampaignID+`","action":"`+a+`"}`)
		// Another workspace's campaign and one that exists nowhere look alike.
		wo := e.do(t, req{path: "/v1/api/campaigns/" + camp.CampaignID + "/" + a, key: otherKey, workspace: "ws_other"})
		wm := e.do(t, req{path: other + a, key: otherKey, workspace: "ws_other"})
		if wo.Code != 404 || wm.Code != 404 || strings.Replace(wo.Body.String(), camp.CampaignID, "0123456789abcdef01234567", 1) != wm.Body.String() {
			t.Fatalf("%s as ws_other: %d %s / %d %s", a, wo.Code, wo.Body, wm.Code, wm.Body)
		}
	}
	if w := e.do(t, req{path: "/v1/api/campaigns/" + camp.CampaignID + "/start"}); w.Code != 409 {
		t.Fatalf("start after cancel: %d %s", w.Code, w.Body)
	}
	if w := e.do(t, req{path: "/v1/api/campaigns/" + camp.CampaignID + "/pause", body: `{"why":1}`}); w.Code != 422 {
		t.Fatalf("control with a body: %d %s", w.Code, w.Body)
	}
	recs := e.commands(t)
	var actions []string
	for _, r := range recs[1:] {
		if ceType(r) != schemas.TypeCampaignControl || string(r.Key) != camp.CampaignID {
			t.Fatalf("record %s %s", ceType(r), r.Key)
		}
		var cc schemas.CampaignControl
		mustUnmarshal(t, r.Value, &cc)
		if cc.WorkspaceID != "ws_demo" || cc.CampaignID != camp.CampaignID {
			t.Fatalf("control %+v", cc)
		}
		actions = append(actions, string(cc.Action))
	}
	if !slices.Equal(actions, []string{"start", "pause", "resume", "cancel"}) {
		t.Fatalf("controls written: %v", actions)
	}
}

// A call with start_at goes to the scheduler, not to the dialer; its cancel
// reaches both.
func TestScheduledCall(t *testing.T) {
	e := newKafkaEnv(t)
	at := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	w := e.do(t, req{body: `{"to":"+15550100001","call_agent_id":"` + demoAgent + `","start_at":"` + at.Format(time.RFC3339) + `","metadata":{"k":1}}`})
	if w.Code != 202 {
		t.Fatalf("POST: %d %s", w.Code, w.Body)
	}
	var acc CallResponse
	mustUnmarshal(t, w.Body.Bytes(), &acc)
	if acc.Status != "scheduled" || !callIDRE.MatchString(acc.CallID) || !roomRE.MatchString(acc.RoomName) ||
		!strings.Contains(acc.Message, at.Format(time.RFC3339)) {
		t.Fatalf("answer %s", w.Body)
	}
	if recs := readTopicRecords(t, e.addr, schemas.TopicRequested); len(recs) != 0 {
		t.Fatalf("%d records on calls.requested", len(recs))
	}
	recs := e.commands(t)
	if len(recs) != 1 || ceType(recs[0]) != schemas.TypeCallScheduled || string(recs[0].Key) != acc.CallID ||
		fmt.Sprintf("%d-%d", recs[0].Partition, recs[0].Offset) != acc.JobID {
		t.Fatalf("commands: %v", recs)
	}
	var cs schemas.CallScheduled
	mustUnmarshal(t, recs[0].Value, &cs)
	if !cs.StartAt.Equal(at) || cs.DeferToCallingHours || cs.Request.CallID != acc.CallID || cs.Request.To != "+15550100001" ||
		cs.Request.RoomName != acc.RoomName || string(cs.Request.Metadata) != `{"k":1}` {
		t.Fatalf("call.scheduled %+v", cs)
	}
	// Read-your-writes, and the cancel goes to the dialer and the scheduler.
	if code, body := e.get(t, "/v1/api/call/"+acc.CallID); code != 200 || !strings.Contains(body, acc.CallID) ||
		!strings.Contains(body, `"status":"scheduled"`) {
		t.Fatalf("GET: %d %s", code, body)
	}
	if w := e.do(t, req{path: "/v1/api/call/" + acc.CallID + "/cancel"}); w.Code != 202 {
		t.Fatalf("cancel: %d %s", w.Code, w.Body)
	}
	for _, topic := range []string{schemas.TopicRequested, schemas.TopicCampaignCommands} {
		recs := readTopicRecords(t, e.addr, topic)
		last := recs[len(recs)-1]
		if ceType(last) != schemas.TypeCallCancel || string(last.Key) != acc.CallID {
			t.Fatalf("%s: last record %s %s", topic, ceType(last), last.Key)
		}
	}

	// defer_to_calling_hours alone: due now, or when the hours allow.
	before := time.Now().UTC()
	w = e.do(t, req{body: `{"to":"+15550100002","call_agent_id":"` + demoAgent + `","defer_to_calling_hours":true}`})
	if w.Code != 202 || !strings.Contains(w.Body.String(), `"status":"scheduled"`) {
		t.Fatalf("deferred: %d %s", w.Code, w.Body)
	}
	mustUnmarshal(t, w.Body.Bytes(), &acc)
	cs = schemas.CallScheduled{}
	for _, r := range e.commands(t) {
		if string(r.Key) == acc.CallID {
			mustUnmarshal(t, r.Value, &cs)
		}
	}
	if !cs.DeferToCallingHours || cs.StartAt.Before(before.Add(-time.Second)) || cs.StartAt.After(time.Now()) {
		t.Fatalf("deferred call.scheduled %+v", cs)
	}

	// start_at refusals write nothing.
	n := len(e.commands(t))
	for _, s := range []string{`"2020-01-01T00:00:00Z"`, `"` + time.Now().Add(31*24*time.Hour).UTC().Format(time.RFC3339) + `"`, `"tomorrow"`, `5`} {
		w := e.do(t, req{body: `{"to":"+15550100003","call_agent_id":"` + demoAgent + `","start_at":` + s + `}`})
		if w.Code != 422 || !strings.Contains(w.Body.String(), `"field":"start_at"`) {
			t.Errorf("start_at %s: %d %s", s, w.Code, w.Body)
		}
	}
	if w := e.do(t, req{body: `{"to":"+15550100003","call_agent_id":"` + demoAgent + `","defer_to_calling_hours":"yes"}`}); w.Code != 422 {
		t.Errorf("defer_to_calling_hours \"yes\": %d %s", w.Code, w.Body)
	}
	if got := len(e.commands(t)); got != n {
		t.Fatalf("refusals wrote %d records", got-n)
	}
	if recs := readTopicRecords(t, e.addr, schemas.TopicRequested); len(recs) != 1 {
		t.Fatalf("%d records on calls.requested, want only the cancel", len(recs))
	}
}

// TestFigureUpload100k uploads 100,000 CSV rows in one request, streamed
// from a pipe, and prints the time and the peak heap (INGEST_FIGURES=1).
func TestFigureUpload100k(t *testing.T) {
	if os.Getenv("INGEST_FIGURES") != "1" {
		t.Skip("INGEST_FIGURES=1 prints the figure for the docs")
	}
	const rows = 100_000
	e := newKafkaEnv(t)
	camp := e.create(t, "")
	pr, pw := io.Pipe()
	go func() {
		_, _ = io.WriteString(pw, "to,contact_id,firstName,lastName,metadata.crm_id\n")
		for i := 0; i < rows; i++ {
			// +1 555 010 0000-9999 ten times over, told apart by the
			// country: 10,000 test numbers, then GB numbers.
			to := fmt.Sprintf("+1555010%04d", i)
			if i >= 10_000 {
				to = fmt.Sprintf("+44 7700 %06d", i)
			}
			fmt.Fprintf(pw, "%s,c-%d,Ada%d,Lovelace,%d\n", to, i, i, i)
		}
		pw.Close()
	}()
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for {
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()
	start := time.Now()
	w := e.do(t, req{path: "/v1/api/campaigns/" + camp.CampaignID + "/contacts", contentType: "text/csv", bodyReader: pr})
	took := time.Since(start)
	close(stop)
	<-sampled
	if w.Code != 200 {
		t.Fatalf("upload: %d %.500s", w.Code, w.Body)
	}
	var got ContactsUploaded
	mustUnmarshal(t, w.Body.Bytes(), &got)
	if got.Accepted != rows || got.Skipped != 0 {
		t.Fatalf("accepted %d, skipped %d: %.500s", got.Accepted, got.Skipped, w.Body)
	}
	cs := contactsOf(t, e.commands(t))
	if len(cs) != rows || cs[rows-1].Row != rows+1 {
		t.Fatalf("%d contacts on the topic", len(cs))
	}
	t.Logf("FIGURE: %d CSV rows uploaded and written in %s (%.0f rows/s), %d records, peak heap %.1f MiB (%.1f MiB above the %.1f MiB before), %d records-store lookups",
		rows, took.Round(time.Millisecond), rows/took.Seconds(), (rows+schemas.MaxContactsPerRecord-1)/schemas.MaxContactsPerRecord,
		float64(peak.Load())/(1<<20), (float64(peak.Load())-float64(base.HeapAlloc))/(1<<20), float64(base.HeapAlloc)/(1<<20), e.camps.asked.Load())
}

// A running campaign's estimated finish is now plus its open contacts over
// its pacing; any other campaign has none.
func TestEstimateFinish(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	ct := schemas.CampaignCounters{Contacts: 10, ByState: map[schemas.ContactStatus]int{
		schemas.ContactQueued: 4, schemas.ContactWaiting: 1, schemas.ContactDone: 3, schemas.ContactCanceled: 1, schemas.ContactExpired: 1}}
	got := estimateFinish(schemas.CampaignRunning, ct, schemas.Pacing{CallsPerSecond: 2}, now)
	if got == nil || !got.Equal(now.Add(3*time.Second)) { // 5 open at 2/s: 2.5 s, rounded up
		t.Fatalf("estimate %v", got)
	}
	for _, s := range []schemas.CampaignStatus{schemas.CampaignDraft, schemas.CampaignPaused, schemas.CampaignCompleted, schemas.CampaignCanceled} {
		if got := estimateFinish(s, ct, schemas.Pacing{CallsPerSecond: 2}, now); got != nil {
			t.Fatalf("%s: estimate %v", s, got)
		}
	}
	// Read-your-writes: a running campaign just created shows its contacts
	// queued and an estimate.
	e := newKafkaEnv(t)
	camp := e.create(t, `,"start":true,"contacts":[{"to":"+15550100001"},{"to":"+15550100002"},{"to":"+15550100003"}]`)
	code, body := e.get(t, "/v1/api/campaigns/"+camp.CampaignID)
	var env CampaignEnvelope
	mustUnmarshal(t, []byte(body), &env)
	if code != 200 || env.Campaign.Status != schemas.CampaignRunning || env.Campaign.Counters.ByState[schemas.ContactQueued] != 3 ||
		env.Campaign.EstimatedFinishAt == nil || env.Campaign.StartedAt == nil || env.Campaign.Name != "renewals" {
		t.Fatalf("GET: %d %s", code, body)
	}
}
