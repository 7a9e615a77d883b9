package ingest

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/dialstream/dialstream/schemas"
)

// FuzzCampaignContactsCSV: POST /v1/api/campaigns/{id}/contacts with any
// text/csv (or JSON) body. Whatever arrives: no 5xx, the envelope, a 200
// whose accepted count is exactly the contacts written, each record valid
// against its schema and of at most 500 contacts, no number or contact id
// written twice, every reported row a real row number; and a refusal other
// than a JSON body broken off half-way (400, which says how many were
// written) writes nothing.
//
//	go test ./ingest -run='^$' -fuzz='^FuzzCampaignContactsCSV$' -fuzztime=60s -parallel=1
func FuzzCampaignContactsCSV(f *testing.F) {
	env := newTestEnv(f, func(c *Config) { c.Logger = discardLogger() })
	campaign := setupCampaign(f, env)
	path := "/v1/api/campaigns/" + campaign + "/contacts"
	for _, b := range []string{
		"to,contact_id,timezone,firstName,metadata.crm\n+15550100001,c-1,America/Chicago,Ada,42\nnope,c-2,,,\n+15550100001,c-3,,,\n",
		"to\n+15550100001\n+15550100001\n", "\ufeffto,x\n+15550100002,\"a\nb\"\n", "to,to\n", "number\n+15550100001\n", "", "to\n",
		"to,a\n+15550100003,1,2\n", "to\n\"+1555\n", "to,tz\n+15550100004,\xff\n", "to,timezone\n+15550100005,Mars/X\n", "to\r\n+15550100006\r\n",
		",,\n,,\n", "to,contact_id\n+15550100007,+15550100008\n+15550100008,\n",
	} {
		f.Add("text/csv", []byte(b))
	}
	f.Add("application/json", []byte(`[{"to":"+15550100001"},{"to":"+15550100001"},{"to":1},[],{"to":"+15550100002","metadata":{}}]`))
	f.Add("text/csv; charset=latin1", []byte("to\n+15550100001\n"))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		if !reachable(ct) {
			return
		}
		w := fuzzServe(t, env, http.MethodPost, path, "", authed(ct), body)
		recs := env.p.take()
		if w.Code != http.StatusOK {
			if len(recs) != 0 && w.Code != http.StatusBadRequest {
				t.Fatalf("%d wrote %d records: %s", w.Code, len(recs), w.Body)
			}
			return
		}
		var res ContactsUploaded
		if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
			t.Fatal(err)
		}
		numbers, ids, written := map[string]bool{}, map[string]bool{}, 0
		for i, typ := range decoded(t, recs) {
			if typ != schemas.TypeCampaignContacts || string(recs[i].Key) != campaign {
				t.Fatalf("upload wrote %s key %s", typ, recs[i].Key)
			}
			var cc schemas.CampaignContacts
			mustUnmarshal(t, recs[i].Value, &cc)
			if len(cc.Contacts) > schemas.MaxContactsPerRecord || cc.UploadID != res.UploadID {
				t.Fatalf("record of %d contacts, upload %s", len(cc.Contacts), cc.UploadID)
			}
			for _, c := range cc.Contacts {
				if numbers[c.To] || ids[c.ContactID] || c.Row < 1 {
					t.Fatalf("contact %+v written twice or without a row", c)
				}
				numbers[c.To], ids[c.ContactID] = true, true
				written++
			}
		}
		if res.Accepted != written || res.Skipped < len(res.Errors) || len(res.Errors) > maxReportedRows {
			t.Fatalf("accepted %d, written %d, skipped %d, errors %d", res.Accepted, written, res.Skipped, len(res.Errors))
		}
		for _, e := range res.Errors {
			if e.Row < 1 || e.Reason == "" {
				t.Fatalf("error %+v", e)
			}
		}
	})
}
