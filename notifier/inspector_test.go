package notifier

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestInspectorVerifiesAndShows(t *testing.T) {
	srv := httptest.NewServer(NewInspector(testRegistry(t)))
	defer srv.Close()
	post := func(path string, body []byte, secrets []string, at time.Time, tamper ...byte) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(append(body, tamper...)))
		keys, err := signingKeys(secrets)
		if err != nil {
			t.Fatal(err)
		}
		Sign(req.Header, keys, "call1-1", at, body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	body := []byte(`{"type":"call.queued","timestamp":"2026-11-26T10:00:00Z","data":{"call_id":"f9e8d7c6b5a4f3e2d1c0b9a8","workspace_id":"ws_b","sequence":1,"metadata":{"x":"<b>"}}}`)
	if code := post("/", body, []string{secretBOld}, time.Now()); code != http.StatusNoContent {
		t.Fatalf("POST answered %d", code)
	}
	post("/", body, []string{secretBNew}, time.Now(), ' ')                 // body changed after signing
	post("/", body, []string{secretA}, time.Now())                         // ws_a's secret for a ws_b body
	post("/", body, []string{secretBNew}, time.Now().Add(-10*time.Minute)) // replayed
	if code := post("/?status=503", body, []string{secretBNew}, time.Now()); code != 503 {
		t.Fatalf("?status=503 answered %d", code)
	}

	resp, err := http.Get(srv.URL + "/?format=json")
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Deliveries []InspectedDelivery }
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
	if n := len(NewInspector(testRegistry(t)).Deliveries("")); n != 0 {
		t.Fatalf("a new inspector shows %d deliveries", n)
	}
}
