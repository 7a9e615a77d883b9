// Package quickstart proves the README's first command: `dialstream dev` (what
// `make run` starts) comes up on a fresh data directory, and the README's curl
// places a call whose webhooks reach the dev inspector, signed.
package quickstart

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/livekitdev"
	"github.com/dialstream/dialstream/internal/testutil"
)

// readmeBody is the body of the README's curl, with the inspector address
// replaced by the test's.
const readmeBody = `{"to":"+15550100001","call_agent_id":"a1b2c3d4e5f6a7b8c9d0e1f2",
       "callback_url":"http://%s/hooks/ws_demo",
       "dynamic_variables":{"firstName":"Ada","lastName":"Lovelace"},
       "metadata":{"crm_id":"42"}}`

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func freePort(t *testing.T) int {
	_, p, _ := net.SplitHostPort(freeAddr(t))
	n, _ := strconv.Atoi(p)
	return n
}

type devProcess struct {
	cmd    *exec.Cmd
	log    *bytes.Buffer
	ingest string
	insp   string
}

func startDev(t *testing.T, bin, dir string, env []string) *devProcess {
	t.Helper()
	p := &devProcess{log: &bytes.Buffer{}, ingest: freeAddr(t), insp: freeAddr(t)}
	p.cmd = exec.Command(bin, "dev")
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Env = append(p.cmd.Env,
		"INGEST_HTTP_ADDR="+p.ingest, "DEV_INSPECTOR_ADDR="+p.insp,
	)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(t) })
	testutil.EventuallyWhy(t, 90*time.Second, "ingest /readyz", func() (bool, string) {
		if p.cmd.ProcessState != nil {
			t.Fatalf("dialstream dev exited:\n%s", p.log)
		}
		r, err := http.Get("http://" + p.ingest + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		r.Body.Close()
		return r.StatusCode == 200, r.Status
	})
	return p
}

func (p *devProcess) stop(t *testing.T) {
	if p.cmd.Process == nil || p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("dialstream dev did not exit cleanly on SIGTERM: %v\n%s", err, tail(p.log.String(), 4000))
		}
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
		t.Errorf("dialstream dev ignored SIGTERM for 30s\n%s", tail(p.log.String(), 4000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

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
	lk, err := livekitdev.FindBinary()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %v", err)
		}
		t.Skipf("livekit-server not installed (run make livekit): %v", err)
	}
	root, _ := filepath.Abs("../..")
	bin := filepath.Join(t.TempDir(), "dialstream")
	build := exec.Command("go", "build", "-o", bin, "./cmd/dialstream")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	// A fresh working directory, as on a newcomer's machine: only the dev
	// registry the repository ships.
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "deploy/dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	reg, err := os.ReadFile(filepath.Join(root, "deploy/dev/registry.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "deploy/dev/registry.yaml"), reg, 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"LIVEKIT_SERVER_BIN=" + lk,
		"BROKER_LISTEN=127.0.0.1:" + strconv.Itoa(freePort(t)),
		"DIALER_HTTP_ADDR=" + freeAddr(t), "NOTIFIER_HTTP_ADDR=" + freeAddr(t), "PHONESIM_HTTP_ADDR=" + freeAddr(t),
		"DEV_LIVEKIT_PORT=" + strconv.Itoa(freePort(t)),
	}
	dev := startDev(t, bin, dir, env)
	api := "http://" + dev.ingest + "/v1/api/call"

	code, resp := post(t, api, "dsk_demo_local", "ws_demo", fmt.Sprintf(readmeBody, dev.insp))
	if code != http.StatusAccepted || resp["status"] != "success" {
		t.Fatalf("README curl: %d %v\n%s", code, resp, tail(dev.log.String(), 4000))
	}
	callID, _ := resp["callId"].(string)
	if resp["message"] != "Outbound call job scheduled for agent a1b2c3d4e5f6a7b8c9d0e1f2 to number +15550100001" ||
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

	// The inspector receives the call's five lifecycle webhooks, each signed
	// with the workspace secret, ending completed, with the metadata as sent.
	var got inspected
	testutil.EventuallyWhy(t, 60*time.Second, "the ended webhook at the inspector", func() (bool, string) {
		r, err := http.Get("http://" + dev.insp + "/?format=json")
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
	want := map[int]string{1: "call.queued", 2: "call.dialing", 3: "call.ringing", 4: "call.answered", 5: "call.ended"}
	for s, typ := range want {
		if seqs[s] != typ {
			t.Errorf("sequence %d: got %q, want %q (all: %v)", s, seqs[s], typ, seqs)
		}
	}
}
