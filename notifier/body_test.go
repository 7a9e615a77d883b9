package notifier

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dialstream/dialstream/schemas"
)

// The client's metadata arrives byte for byte (key order, number spelling,
// characters json.Marshal would escape), under data.metadata.
func TestBodyCarriesMetadataExactly(t *testing.T) {
	meta := `{"z":1,"a":"<b>&amp;</b>","n":1.50,"big":123456789012345678901234567890,"nested":{"k":[1,"2",null]}}`
	ring, talk := 3.5, 42.25
	ev := schemas.CallEvent{
		CallID: "f9e8d7c6b5a4f3e2d1c0b9a8", WorkspaceID: "ws_b", Sequence: 5, Status: schemas.StatusEnded,
		OccurredAt: time.Date(2026, 11, 26, 10, 4, 31, 500e6, time.UTC), To: "+15550100001",
		CallbackURL: "https://example.com/hook", Metadata: json.RawMessage(meta),
		Outcome: schemas.OutcomeBusy, EndedBy: schemas.EndedByCallee, SIPStatusCode: 486, SIPStatus: "Busy Here",
		RingDurationSeconds: &ring, TalkDurationSeconds: &talk,
		CampaignID: "0123456789abcdef01234567", ContactID: "crm-17", Attempt: 2,
	}
	b, err := buildBody("f9e8d7c6b5a4f3e2d1c0b9a8-5", schemas.TypeCallEnded, &ev, true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"metadata":`+meta) {
		t.Fatalf("metadata not verbatim in %s", b)
	}
	var p struct {
		Type      string         `json:"type"`
		Timestamp time.Time      `json:"timestamp"`
		Data      map[string]any `json:"data"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != "call.ended" || !p.Timestamp.Equal(ev.OccurredAt) {
		t.Fatalf("type %q timestamp %v", p.Type, p.Timestamp)
	}
	want := map[string]any{"event_id": "f9e8d7c6b5a4f3e2d1c0b9a8-5", "call_id": ev.CallID, "workspace_id": "ws_b",
		"sequence": 5.0, "status": "ended", "outcome": "busy", "ended_by": "callee", "sip_status_code": 486.0,
		"sip_status": "Busy Here", "ring_duration_seconds": 3.5, "talk_duration_seconds": 42.25, "to": "********0001",
		"campaign_id": "0123456789abcdef01234567", "contact_id": "crm-17", "attempt": 2.0}
	for k, v := range want {
		if p.Data[k] != v {
			t.Errorf("data.%s = %v, want %v", k, p.Data[k], v)
		}
	}
	if _, ok := p.Data["callback_url"]; ok {
		t.Error("callback_url leaked into the body")
	}

	ev2 := schemas.CallEvent{CallID: ev.CallID, WorkspaceID: "ws_a", Sequence: 1, Status: schemas.StatusQueued, OccurredAt: ev.OccurredAt}
	b, _ = buildBody("x-1", schemas.TypeCallQueued, &ev2, false)
	if strings.Contains(string(b), "metadata") || strings.Contains(string(b), "outcome") || strings.Contains(string(b), "campaign") || !strings.HasPrefix(string(b), `{"type":"call.queued"`) {
		t.Fatalf("queued body %s", b)
	}
}
