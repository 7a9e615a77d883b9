package quickstart

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
	"github.com/dialstream/dialstream/tests/testbin"
)

// The do-not-call list end to end, on the whole pipeline `make run` starts
// (embedded broker, ingest, dialer, livekit-server, phonesim): a number put
// on the list through the API is refused at ingest at once; a request for it
// produced straight to Kafka (no ingest) ends `suppressed` in the dialer and
// phonesim never sees a dial; taken off the list, it is called again.
func TestSuppressionEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole pipeline")
	}
	broker, phonesim := testbin.FreeAddr(t), testbin.FreeAddr(t)
	dev := testbin.StartDev(t, map[string]string{"BROKER_LISTEN": broker, "PHONESIM_HTTP_ADDR": phonesim})
	base := "http://" + dev.Ingest + "/v1/api"
	const number, agent = "+15550100001", "a1b2c3d4e5f6a7b8c9d0e1f2"
	call := `{"to":"` + number + `","call_agent_id":"` + agent + `"}`

	code, body := send(t, http.MethodPut, base+"/suppressions/"+number, `{"reason":"opt_out"}`)
	if code != http.StatusOK {
		t.Fatalf("PUT suppression: %d %s", code, body)
	}
	code, resp := post(t, base+"/call", "dsk_demo_local", "ws_demo", call)
	if code != http.StatusUnprocessableEntity || resp["rule"] != "suppressed" || !strings.Contains(fmt.Sprint(resp["message"]), "opt_out") {
		t.Fatalf("call to a suppressed number: %d %v; want 422 naming the rule and the reason", code, resp)
	}

	// Straight to Kafka, as a producer of the requested topic would.
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	direct := "d1d2d3d4d5d6d7d8d9d0e1e2"
	rec, err := schemas.NewRecord(schemas.TopicRequested, direct, schemas.Meta{Type: schemas.TypeCallRequested, Source: "/test/direct"},
		schemas.CallRequested{CallID: direct, WorkspaceID: "ws_demo", CallAgentID: agent, To: number, RequestedAt: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Call struct {
			Status, Outcome, Reason string
		} `json:"call"`
	}
	testutil.EventuallyWhy(t, 30*time.Second, "the direct request to end", func() (bool, string) {
		code, b := send(t, http.MethodGet, base+"/call/"+direct, "")
		if code != http.StatusOK {
			return false, fmt.Sprintf("%d %s", code, b)
		}
		got.Call.Status = ""
		_ = json.Unmarshal(b, &got)
		return got.Call.Status == "ended", string(b)
	})
	if got.Call.Outcome != "suppressed" || !strings.Contains(got.Call.Reason, "do-not-call") {
		t.Errorf("direct request ended %q (%q), want suppressed naming the list", got.Call.Outcome, got.Call.Reason)
	}
	if n := dialsTo(t, phonesim, number); n != 0 {
		t.Fatalf("phonesim saw %d dials to a suppressed number", n)
	}

	// A premium-rate number: refused at ingest, and ended without a dial
	// when produced straight to Kafka (ws_demo may call the US only, no
	// premium-rate numbers).
	const premium = "+19005550123"
	code, resp = post(t, base+"/call", "dsk_demo_local", "ws_demo", `{"to":"`+premium+`","call_agent_id":"`+agent+`"}`)
	if code != http.StatusUnprocessableEntity || resp["rule"] != "destination_not_allowed" {
		t.Fatalf("call to a premium-rate number: %d %v; want 422 destination_not_allowed", code, resp)
	}
	toll := "d1d2d3d4d5d6d7d8d9d0e1e3"
	rec, err = schemas.NewRecord(schemas.TopicRequested, toll, schemas.Meta{Type: schemas.TypeCallRequested, Source: "/test/direct"},
		schemas.CallRequested{CallID: toll, WorkspaceID: "ws_demo", CallAgentID: agent, To: premium, RequestedAt: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyWhy(t, 30*time.Second, "the premium-rate request to end", func() (bool, string) {
		code, b := send(t, http.MethodGet, base+"/call/"+toll, "")
		got.Call.Status = ""
		_ = json.Unmarshal(b, &got)
		return code == http.StatusOK && got.Call.Status == "ended", string(b)
	})
	if got.Call.Outcome != "destination_not_allowed" {
		t.Errorf("premium-rate request ended %q (%q), want destination_not_allowed", got.Call.Outcome, got.Call.Reason)
	}
	if n := dialsTo(t, phonesim, premium); n != 0 {
		t.Fatalf("phonesim saw %d dials to a premium-rate number", n)
	}

	// Off the list: the number is called again.
	if code, b := send(t, http.MethodDelete, base+"/suppressions/"+number, ""); code != http.StatusNoContent {
		t.Fatalf("DELETE suppression: %d %s", code, b)
	}
	if code, resp := post(t, base+"/call", "dsk_demo_local", "ws_demo", call); code != http.StatusAccepted {
		t.Fatalf("call after removal: %d %v", code, resp)
	}
	testutil.EventuallyWhy(t, 30*time.Second, "a dial to the number once removed", func() (bool, string) {
		n := dialsTo(t, phonesim, number)
		return n == 1, fmt.Sprintf("%d dials", n)
	})
}

// send makes a ws_demo request and returns the status and body.
func send(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
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

// dialsTo counts the dials phonesim received for number.
func dialsTo(t *testing.T, phonesim, number string) int {
	t.Helper()
	r, err := http.Get("http://" + phonesim + "/dials")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var out struct {
		Dials []struct {
			To string `json:"to"`
		} `json:"dials"`
	}
	if err := json.NewDecoder(r.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range out.Dials {
		if strings.HasSuffix(d.To, strings.TrimPrefix(number, "+")) {
			n++
		}
	}
	return n
}
