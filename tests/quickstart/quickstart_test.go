// Package quickstart proves the README's first command: `dialstream dev` (what
// `make run` starts) comes up on a fresh data directory, and the README's curl
// places a call whose webhooks reach the dev inspector, signed.
package quickstart

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/tests/testbin"
)

// readmeBody is the body of the README's curl, with the inspector address
// replaced by the test's.
const readmeBody = `{"to":"+15550100200","call_agent_id":"a1b2c3d4e5f6a7b8c9d0e1f2",
       "callback_url":"http://%s/hooks/ws_demo",
       "dynamic_variables":{"firstName":"Ada","lastName":"Lovelace"},
       "metadata":{"crm_id":"42"}}`

func post(t *testing.T, url, key, ws, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-workspace-id", ws)
	req.Header.Set("Authorization", "Bearer "+key)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("response %d not JSON: %s", r.StatusCode, b)
	}
	return r.StatusCode, out
}

type inspected struct {
	Deliveries []struct {
		WebhookID string `json:"webhook_id"`
		Type      string `json:"type"`
		CallID    string `json:"call_id"`
		Sequence  int    `json:"sequence"`
		Verified  bool   `json:"verified"`
		Body      struct {
			Data struct {
				Outcome  string          `json:"outcome"`
				Metadata json.RawMessage `json:"metadata"`
			} `json:"data"`
		} `json:"body"`
	} `json:"deliveries"`
}

func TestReadmeQuickstart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole pipeline")
	}
	// Set in the test's environment, these would send dev mode to a broker
	// and a LiveKit that do not exist: dev mode must not see them.
	t.Setenv("KAFKA_BROKERS", "127.0.0.1:1")
	t.Setenv("LIVEKIT_URL", "ws://127.0.0.1:1")
	// A fresh working directory, as on a newcomer's machine: only the dev
	// registry the repository ships.
	dev := testbin.StartDev(t, nil)
	api := "http://" + dev.Ingest + "/v1/api/call"

	code, resp := post(t, api, "dsk_demo_local", "ws_demo", fmt.Sprintf(readmeBody, dev.Inspector))
	if code != http.StatusAccepted || resp["status"] != "success" {
		t.Fatalf("README curl: %d %v", code, resp)
	}
	callID, _ := resp["callId"].(string)
	if resp["message"] != "Outbound call job scheduled for agent a1b2c3d4e5f6a7b8c9d0e1f2 to number +15550100200" ||
		len(callID) != 24 || !strings.HasPrefix(resp["roomName"].(string), "a1b2c3d4e5f6a7b8c9d0e1f2-") {
		t.Fatalf("response %v", resp)
	}

	// The seed document's own example number is refused, saying why.
	code, resp = post(t, api, "dsk_demo_local", "ws_demo", `{"to":"+1234567890","call_agent_id":"a1b2c3d4e5f6a7b8c9d0e1f2"}`)
	if code != http.StatusUnprocessableEntity || !strings.Contains(resp["message"].(string), "not a valid phone number") {
		t.Fatalf("seed example: %d %v", code, resp)
	}
	// Isolation by hand, as the README suggests: ws_other's key cannot use ws_demo's agent.
	code, _ = post(t, api, "dsk_other_local", "ws_other", `{"to":"+15550100001","call_agent_id":"a1b2c3d4e5f6a7b8c9d0e1f2"}`)
	if code != http.StatusNotFound {
		t.Fatalf("other workspace's agent: %d", code)
	}

	// The inspector receives the call's five lifecycle webhooks and the
	// agent's reports, each signed with the workspace secret, ending
	// completed, with the metadata as sent.
	var got inspected
	testutil.EventuallyWhy(t, 60*time.Second, "the ended webhook at the inspector", func() (bool, string) {
		r, err := http.Get("http://" + dev.Inspector + "/?format=json")
		if err != nil {
			return false, err.Error()
		}
		defer r.Body.Close()
		got = inspected{}
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			return false, err.Error()
		}
		for _, d := range got.Deliveries {
			if d.CallID == callID && d.Type == "call.ended" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d deliveries", len(got.Deliveries))
	})
	// The agent's answered_by comes before the end (the person replied to
	// the greeting), so its webhook is there by now too; the result may come
	// after the end, as post-call analysis.
	seqs := map[int]string{}
	for _, d := range got.Deliveries {
		if d.CallID != callID {
			continue
		}
		if !d.Verified {
			t.Errorf("delivery %s not verified", d.WebhookID)
		}
		if d.WebhookID != fmt.Sprintf("%s-%d", callID, d.Sequence) {
			t.Errorf("webhook-id %s for sequence %d", d.WebhookID, d.Sequence)
		}
		var meta bytes.Buffer
		if err := json.Compact(&meta, d.Body.Data.Metadata); err != nil || meta.String() != `{"crm_id":"42"}` {
			t.Errorf("metadata %s", d.Body.Data.Metadata)
		}
		seqs[d.Sequence] = d.Type
		if d.Type == "call.ended" && d.Body.Data.Outcome != "completed" {
			t.Errorf("outcome %s", d.Body.Data.Outcome)
		}
	}
	var lifecycle []string
	reports := 0
	for s := 1; s <= len(seqs); s++ {
		switch typ := seqs[s]; typ {
		case "call.agent_report":
			reports++
		case "":
			t.Errorf("sequence %d missing (all: %v)", s, seqs)
		default:
			lifecycle = append(lifecycle, typ)
		}
	}
	if want := []string{"call.queued", "call.dialing", "call.ringing", "call.answered", "call.ended"}; fmt.Sprint(lifecycle) != fmt.Sprint(want) {
		t.Errorf("lifecycle webhooks %v, want %v (all: %v)", lifecycle, want, seqs)
	}
	if reports == 0 {
		t.Errorf("no call.agent_report webhook from the agent (all: %v)", seqs)
	}
}
