package invariants

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Client says where and as whom calls are requested.
type Client struct {
	IngestURL   string // http://127.0.0.1:<port>
	APIKey      string
	WorkspaceID string
	AgentID     string
	CallbackURL string
	HTTP        *http.Client
}

// LoadConfig shapes a steady stream of call requests. Both Rate x Duration
// and RetryFor bound it: a load never sends more than ceil(Rate x Duration)
// requests, and never retries one for longer than RetryFor.
type LoadConfig struct {
	Rate     float64       // new calls per second
	Duration time.Duration // how long new calls are started
	Numbers  []string      // dialed in turn
	// RetryFor is how long one request is retried, with the same
	// Idempotency-Key, after a transport error, 409, 429 or 5xx: what a
	// careful client does, and what makes a 503 during a broker outage end
	// in either an accepted call or a known refusal.
	RetryFor time.Duration
	// KeyPrefix makes the Idempotency-Keys of one run unique.
	KeyPrefix string
}

// Load is a running stream of requests.
type Load struct {
	done chan struct{}
}

// Wait returns once every request has a final answer or gave up retrying.
func (l *Load) Wait() { <-l.done }

// StartLoad sends cfg's stream through c, recording every answer in r.
func (r *Recorder) StartLoad(ctx context.Context, c Client, cfg LoadConfig) *Load {
	l := &Load{done: make(chan struct{})}
	total := int(math.Ceil(cfg.Rate * cfg.Duration.Seconds()))
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	go func() {
		defer close(l.done)
		var wg sync.WaitGroup
		defer wg.Wait()
		start := time.Now()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; i < total && time.Since(start) < cfg.Duration; i++ {
			key := fmt.Sprintf("%s-%04d", cfg.KeyPrefix, i)
			to := cfg.Numbers[i%len(cfg.Numbers)]
			r.settle(func() {
				r.requests[key] = &Request{Key: key, To: to}
				r.order = append(r.order, key)
			})
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.request(ctx, c, cfg.RetryFor, key, to, i)
			}()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return l
}

// callResponse is ingest's 2xx body.
type callResponse struct {
	CallID   string `json:"callId"`
	RoomName string `json:"roomName"`
}

func (r *Recorder) request(ctx context.Context, c Client, retryFor time.Duration, key, to string, i int) {
	body, _ := json.Marshal(map[string]any{
		"to":                to,
		"call_agent_id":     c.AgentID,
		"callback_url":      c.CallbackURL,
		"dynamic_variables": map[string]string{"firstName": "Ada", "lastName": "Lovelace"},
		"metadata":          map[string]any{"load_index": i, "key": key},
	})
	q := func(f func(*Request)) { r.settle(func() { f(r.requests[key]) }) }
	deadline := time.Now().Add(retryFor)
	last := ""
	for {
		a, err := c.post(ctx, key, body)
		answer := AnswerTransport
		if err == nil {
			answer = strconv.Itoa(a.code)
		}
		q(func(rq *Request) { rq.Answers = append(rq.Answers, answer) })
		switch {
		case err == nil && a.code >= 200 && a.code < 300:
			var cr callResponse
			if jerr := json.Unmarshal(a.body, &cr); jerr != nil || cr.CallID == "" {
				q(func(rq *Request) { rq.Refused = fmt.Sprintf("%d with an unreadable body: %s", a.code, a.body) })
				return
			}
			q(func(rq *Request) {
				rq.Accepted, rq.CallID, rq.RoomName, rq.Replayed = true, cr.CallID, cr.RoomName, a.replayed
			})
			return
		case err == nil && !retryableStatus(a.code):
			q(func(rq *Request) { rq.Refused = fmt.Sprintf("%d %s", a.code, bytes.TrimSpace(a.body)) })
			return
		case err != nil:
			last = err.Error()
		default:
			last = fmt.Sprintf("%d %s", a.code, bytes.TrimSpace(a.body))
		}
		wait := min(max(a.retryAfter, 500*time.Millisecond), 2*time.Second)
		if time.Now().Add(wait).After(deadline) {
			q(func(rq *Request) { rq.Unsettled = fmt.Sprintf("still %s after %s", last, retryFor) })
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			q(func(rq *Request) { rq.Unsettled = fmt.Sprintf("%v (last answer: %s)", errStopped, last) })
			return
		case <-t.C:
		}
	}
}

func (r *Recorder) settle(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f()
}

// retryableStatus: what a client retries with the same Idempotency-Key.
func retryableStatus(code int) bool {
	return code == http.StatusConflict || code == http.StatusTooManyRequests || code >= 500
}

// httpAnswer is one attempt's answer.
type httpAnswer struct {
	code       int
	body       []byte
	retryAfter time.Duration
	replayed   bool // Idempotent-Replayed: true
}

func (c Client) post(ctx context.Context, key string, body []byte) (httpAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.IngestURL+"/v1/api/call", bytes.NewReader(body))
	if err != nil {
		return httpAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.APIKey)
	req.Header.Set("x-workspace-id", c.WorkspaceID)
	req.Header.Set("Idempotency-Key", key)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return httpAnswer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return httpAnswer{}, err
	}
	a := httpAnswer{code: resp.StatusCode, body: b, replayed: resp.Header.Get("Idempotent-Replayed") == "true"}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		a.retryAfter = time.Duration(s) * time.Second
	}
	return a, nil
}
