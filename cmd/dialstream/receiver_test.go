package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dialstream/dialstream/notifier"
)

// The receiver keeps every delivery, past the inspector's window, each with
// its signature checked; a forged one is kept too, marked unverified.
func TestReceiverRecordsEveryDelivery(t *testing.T) {
	rr := &recordingReceiver{insp: newInspector(webhookRegistry(t)), max: 1000}
	srv := httptest.NewServer(rr.server("").Handler())
	defer srv.Close()

	n := inspectorSize + 50
	for i := 1; i <= n; i++ {
		body := fmt.Appendf(nil, `{"type":"call.queued","data":{"workspace_id":"ws_a","call_id":"c%d","sequence":1}}`, i)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hooks/ws_a", bytes.NewReader(body))
		sign(t, req.Header, secretA, fmt.Sprintf("c%d-1", i), time.Now(), body)
		if i == n {
			req.Header.Set(notifier.HeaderWebhookSignature, "v1,Zm9yZ2Vk")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("POST %d: %s", i, resp.Status)
		}
	}

	resp, err := http.Get(srv.URL + "/deliveries")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Deliveries []inspectedDelivery `json:"deliveries"`
		Dropped    int                 `json:"dropped"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if len(got.Deliveries) != n || got.Dropped != 0 {
		t.Fatalf("%d deliveries (%d dropped), want %d", len(got.Deliveries), got.Dropped, n)
	}
	for i, d := range got.Deliveries {
		wantID := fmt.Sprintf("c%d-1", i+1)
		if d.WebhookID != wantID || d.CallID != fmt.Sprintf("c%d", i+1) {
			t.Fatalf("delivery %d is %s/%s, want %s, oldest first", i, d.WebhookID, d.CallID, wantID)
		}
		if verified := i+1 != n; d.Verified != verified {
			t.Fatalf("delivery %d verified=%v (%s), want %v", i, d.Verified, d.VerifyError, verified)
		}
	}
}

// Past its cap the receiver counts what it could not keep.
func TestReceiverCountsDropped(t *testing.T) {
	rr := &recordingReceiver{insp: newInspector(webhookRegistry(t)), max: 2}
	srv := httptest.NewServer(rr.server("").Handler())
	defer srv.Close()
	for range 3 {
		resp, err := http.Post(srv.URL+"/", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if len(rr.log) != 2 || rr.dropped != 1 {
		t.Fatalf("kept %d, dropped %d; want 2 and 1", len(rr.log), rr.dropped)
	}
}
