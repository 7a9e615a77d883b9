package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/notifier"
)

// Webhook secrets of the tests' registry: ws_b is rotating from old to new.
const (
	secretA    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secretBOld = "whsec_b2xkLXNlY3JldC1vZi13b3Jrc3BhY2UtYg=="
	secretBNew = "whsec_bmV3LXNlY3JldC1vZi13b3Jrc3BhY2UtYg=="
)

func webhookRegistry(t *testing.T) *registry.Registry {
	t.Helper()
	reg, err := registry.Parse([]byte(`
workspaces:
  - id: ws_a
    webhook_secrets: ["`+secretA+`"]
  - id: ws_b
    webhook_secrets: ["`+secretBNew+`", "`+secretBOld+`"]
`), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// sign sets the Standard Webhooks headers on h as the notifier does for a
// delivery of body with secret, as webhook id at time at.
func sign(t *testing.T, h http.Header, secret, id string, at time.Time, body []byte) {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	notifier.Sign(h, [][]byte{key}, id, at, body)
}

func TestInspectorVerifiesAndShows(t *testing.T) {
	srv := httptest.NewServer(newInspector(webhookRegistry(t)))
	defer srv.Close()
	post := func(path string, body []byte, secret string, at time.Time, tamper ...byte) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(append(body, tamper...)))
		sign(t, req.Header, secret, "call1-1", at, body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	body := []byte(`{"type":"call.queued","timestamp":"2026-11-26T10:00:00Z","data":{"call_id":"f9e8d7c6b5a4f3e2d1c0b9a8","workspace_id":"ws_b","sequence":1,"metadata":{"x":"<b>"}}}`)
	if code := post("/", body, secretBOld, time.Now()); code != http.StatusNoContent {
		t.Fatalf("POST answered %d", code)
	}
	post("/", body, secretBNew, time.Now(), ' ')                 // body changed after signing
	post("/", body, secretA, time.Now())                         // ws_a's secret for a ws_b body
	post("/", body, secretBNew, time.Now().Add(-10*time.Minute)) // replayed
	if code := post("/?status=503", body, secretBNew, time.Now()); code != 503 {
		t.Fatalf("?status=503 answered %d", code)
	}

	resp, err := http.Get(srv.URL + "/?format=json")
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Deliveries []inspectedDelivery }
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ds := got.Deliveries
	if len(ds) != 5 {
		t.Fatalf("%d deliveries", len(ds))
	}
	// Newest first.
	wantVerified := []bool{true, false, false, false, true}
	for i, d := range ds {
		if d.Verified != wantVerified[i] {
			t.Errorf("delivery %d verified=%v (%s), want %v", d.N, d.Verified, d.VerifyError, wantVerified[i])
		}
		if d.WebhookID != "call1-1" || d.WorkspaceID != "ws_b" || d.Type != "call.queued" {
			t.Errorf("delivery %+v", d)
		}
	}
	if ds[0].AnsweredWith != 503 || ds[4].AnsweredWith != 204 {
		t.Errorf("answers %d %d", ds[0].AnsweredWith, ds[4].AnsweredWith)
	}
	var gotBody, wantBody any
	_ = json.Unmarshal(ds[4].Body, &gotBody)
	_ = json.Unmarshal(body, &wantBody)
	if !reflect.DeepEqual(gotBody, wantBody) {
		t.Errorf("body %s", ds[4].Body)
	}

	resp, err = http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	var page bytes.Buffer
	_, _ = page.ReadFrom(resp.Body)
	resp.Body.Close()
	html := page.String()
	if !strings.Contains(html, "NOT verified") || !strings.Contains(html, ">verified<") || strings.Contains(html, `"<b>"`) {
		t.Fatalf("page does not show verification or does not escape the body:\n%s", html)
	}
	if n := len(newInspector(webhookRegistry(t)).deliveries("")); n != 0 {
		t.Fatalf("a new inspector shows %d deliveries", n)
	}
}
