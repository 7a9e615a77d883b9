package main

import (
	"bytes"
	"context"
	"encoding/json"
	"html/template"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/dialstream/dialstream/internal/ops"
	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/notifier"
)

// inspectorSize is how many deliveries an inspector keeps.
const inspectorSize = 200

// inspector is the dev-mode webhook receiver: point a call's callback_url at
// it and watch the events arrive. It accepts POSTs, verifies their Standard
// Webhooks signature with the secrets of the workspace named in the body,
// keeps the last inspectorSize deliveries in memory and shows them at GET
// (an HTML page, or JSON with ?format=json; ?call_id= filters).
//
// A POST with ?status=503 in its URL is answered with that status, so a
// newcomer can watch the retry schedule at work by putting it in the
// callback_url. Dev only: it shows every workspace's deliveries to whoever
// can reach it.
type inspector struct {
	reg *registry.Registry
	now func() time.Time

	mu      sync.Mutex
	n       int
	entries []inspectedDelivery // oldest first
}

// inspectedDelivery is one POST the inspector received.
type inspectedDelivery struct {
	N            int             `json:"n"`
	ReceivedAt   time.Time       `json:"received_at"`
	WebhookID    string          `json:"webhook_id"`
	Timestamp    string          `json:"webhook_timestamp"`
	Type         string          `json:"type,omitempty"`
	WorkspaceID  string          `json:"workspace_id,omitempty"`
	CallID       string          `json:"call_id,omitempty"`
	Sequence     int             `json:"sequence,omitempty"`
	Verified     bool            `json:"verified"`
	VerifyError  string          `json:"verify_error,omitempty"`
	AnsweredWith int             `json:"answered_with"`
	Body         json.RawMessage `json:"body"`
}

// newInspector returns an inspector that verifies with reg's webhook secrets.
func newInspector(reg *registry.Registry) *inspector {
	return &inspector{reg: reg, now: time.Now}
}

var _ http.Handler = (*inspector)(nil)

func (i *inspector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		i.receive(w, r)
	case http.MethodGet, http.MethodHead:
		i.show(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

const inspectorMaxBody = 1 << 20

func (i *inspector) receive(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, inspectorMaxBody+1))
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > inspectorMaxBody {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	answer := http.StatusNoContent
	if s, err := strconv.Atoi(r.URL.Query().Get("status")); err == nil && s >= 200 && s <= 599 {
		answer = s
	}
	d := inspectedDelivery{
		ReceivedAt: i.now().UTC(), WebhookID: r.Header.Get(notifier.HeaderWebhookID),
		Timestamp: r.Header.Get(notifier.HeaderWebhookTimestamp), AnsweredWith: answer,
	}
	var p struct {
		Type string `json:"type"`
		Data struct {
			WorkspaceID string `json:"workspace_id"`
			CallID      string `json:"call_id"`
			Sequence    int    `json:"sequence"`
		} `json:"data"`
	}
	if json.Valid(body) {
		d.Body = bytes.Clone(body)
		_ = json.Unmarshal(body, &p)
	} else {
		d.Body, _ = json.Marshal(string(body))
	}
	d.Type, d.WorkspaceID, d.CallID, d.Sequence = p.Type, p.Data.WorkspaceID, p.Data.CallID, p.Data.Sequence
	if ws, ok := i.reg.Workspace(d.WorkspaceID); !ok {
		d.VerifyError = "body names no known workspace (data.workspace_id)"
	} else if err := notifier.Verify(r.Header, body, ws.WebhookSecrets, i.now(), 5*time.Minute); err != nil {
		d.VerifyError = err.Error()
	} else {
		d.Verified = true
	}

	i.mu.Lock()
	i.n++
	d.N = i.n
	if len(i.entries) == inspectorSize {
		copy(i.entries, i.entries[1:])
		i.entries = i.entries[:inspectorSize-1]
	}
	i.entries = append(i.entries, d)
	i.mu.Unlock()
	w.WriteHeader(answer)
}

// deliveries returns what was received, newest first, optionally only one
// call's.
func (i *inspector) deliveries(callID string) []inspectedDelivery {
	i.mu.Lock()
	defer i.mu.Unlock()
	out := make([]inspectedDelivery, 0, len(i.entries))
	for k := len(i.entries) - 1; k >= 0; k-- {
		if callID == "" || i.entries[k].CallID == callID {
			out = append(out, i.entries[k])
		}
	}
	return out
}

func (i *inspector) show(w http.ResponseWriter, r *http.Request) {
	ds := i.deliveries(r.URL.Query().Get("call_id"))
	if r.URL.Query().Get("format") == "json" {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		_ = enc.Encode(struct {
			Deliveries []inspectedDelivery `json:"deliveries"`
		}{ds})
		return
	}
	type row struct {
		inspectedDelivery
		Pretty string
	}
	rows := make([]row, len(ds))
	for k, d := range ds {
		var b bytes.Buffer
		if json.Indent(&b, d.Body, "", "  ") != nil {
			b.Reset()
			b.Write(d.Body)
		}
		rows[k] = row{d, b.String()}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = inspectorPage.Execute(w, rows)
}

// serve runs srv until ctx ends, then gives its requests 5 s to finish. It is
// how the dev-only HTTP servers of this binary (the inspector, the receiver)
// run; the services serve their own.
func serve(ctx context.Context, srv *ops.Server) error {
	served, err := srv.Start()
	if err != nil {
		return err
	}
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	return srv.Shutdown(5 * time.Second)
}

var inspectorPage = template.Must(template.New("inspector").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="3">
<title>Dialstream webhook inspector</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:.4rem;text-align:left;vertical-align:top;font-size:.9rem}
pre{margin:0;font-size:.8rem;white-space:pre-wrap;max-width:60rem}
.ok{color:#087f23;font-weight:600}.bad{color:#b00020;font-weight:600}
code{font-size:.85rem}
</style></head><body>
<h1>Webhook inspector</h1>
<p>Deliveries received here, newest first ({{len .}} shown; the page refreshes every 3 s).
JSON: <a href="?format=json"><code>?format=json</code></a>.</p>
{{if not .}}<p><em>Nothing yet. Make a call with this page's URL as its <code>callback_url</code>.</em></p>{{else}}
<table><tr><th>#</th><th>received</th><th>signature</th><th>event</th><th>call</th><th>webhook-id</th><th>body</th></tr>
{{range .}}<tr>
<td>{{.N}}</td>
<td>{{.ReceivedAt.Format "15:04:05.000"}}<br>answered {{.AnsweredWith}}</td>
<td>{{if .Verified}}<span class="ok">verified</span>{{else}}<span class="bad">NOT verified</span><br>{{.VerifyError}}{{end}}</td>
<td>{{.Type}}<br>seq {{.Sequence}}</td>
<td><code>{{.CallID}}</code><br>{{.WorkspaceID}}</td>
<td><code>{{.WebhookID}}</code></td>
<td><pre>{{.Pretty}}</pre></td>
</tr>{{end}}</table>{{end}}
</body></html>
`))
