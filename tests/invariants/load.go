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

	"github.com/dialstream/dialstream/internal/backoff"
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

// LoadConfig shapes a steady stream of call requests: ceil(Rate x Duration)
// turns, turn i due i/Rate seconds after the start, each sending the next
// entry of Mix. A request is never
// retried for longer than RetryFor.
type LoadConfig struct {
	Rate     float64       // new calls per second
	Duration time.Duration // how long new calls are started
	Mix      []Call        // the calls, sent in turn
	// RetryFor is how long one request is retried, with the same
	// Idempotency-Key, after a transport error, 409, 429 or 5xx: what a
	// careful client does, and what makes a 503 during a broker outage end
	// in either an accepted call or a known refusal.
	RetryFor time.Duration
	// KeyPrefix makes the Idempotency-Keys of one run unique.
	KeyPrefix string
}

// Call is one entry of a load's mix: whom to call, and what the client
// does with the call.
type Call struct {
	To string
	// Cancel: once ingest accepted the call, the client waits CancelAfter
	// (0: not at all, so that the cancel meets a call still queued or just
	// claimed) and cancels it through POST /v1/api/call/:callId/cancel,
	// retried like the request (transport error, 404 before ingest sees its
	// own write, 429, 5xx) for RetryFor.
	Cancel      bool
	CancelAfter time.Duration
	// Agent is the call_agent_id to request it with ("": Client.AgentID).
	Agent string
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
		// Turn i is due at start + i x interval, whatever the turns before
		// it cost: a late turn is sent at once, so that a busy machine
		// delays calls rather than dropping them (a ticker drops the ticks
		// its reader misses), and a run sends the same calls every time.
		for i := 0; i < total; i++ {
			due := time.Duration(i) * interval
			if !backoff.Sleep(ctx, time.Until(start.Add(due))) {
				return
			}
			call := cfg.Mix[i%len(cfg.Mix)]
			key := fmt.Sprintf("%s-%04d", cfg.KeyPrefix, i)
			r.settle(func() {
				r.requests[key] = &Request{Key: key, To: call.To}
				r.order = append(r.order, key)
			})
			wg.Add(1)
			go func() {
				defer wg.Done()
				cc := c
				if call.Agent != "" {
					cc.AgentID = call.Agent
				}
				if id := r.request(ctx, cc, cfg.RetryFor, key, call.To, i); id != "" && call.Cancel {
					r.cancelCall(ctx, c, cfg.RetryFor, key, id, call.CancelAfter)
				}
			}()
		}
	}()
	return l
}

// callResponse is ingest's 2xx body.
type callResponse struct {
	CallID   string `json:"callId"`
	RoomName string `json:"roomName"`
}

// request sends one call request until it has a final answer, and returns
// the accepted call's id ("" if it was not accepted).
func (r *Recorder) request(ctx context.Context, c Client, retryFor time.Duration, key, to string, i int) string {
	body, _ := json.Marshal(map[string]any{
		"to":                to,
		"call_agent_id":     c.AgentID,
		"callback_url":      c.CallbackURL,
		"dynamic_variables": map[string]string{"firstName": "Ada", "lastName": "Lovelace"},
		"metadata":          map[string]any{"load_index": i, "key": key},
	})
	q := func(f func(*Request)) { r.settle(func() { f(r.requests[key]) }) }
	id := ""
	unsettled := retrying(ctx, retryFor, 500*time.Millisecond, func() (httpAnswer, error) {
		a, err := c.post(ctx, key, body)
		q(func(rq *Request) { rq.Answers = append(rq.Answers, answerOf(a, err)) })
		return a, err
	}, func(a httpAnswer) bool {
		switch {
		case a.code >= 200 && a.code < 300:
			var cr callResponse
			if jerr := json.Unmarshal(a.body, &cr); jerr != nil || cr.CallID == "" {
				q(func(rq *Request) { rq.Refused = fmt.Sprintf("%d with an unreadable body: %s", a.code, a.body) })
				return true
			}
			q(func(rq *Request) {
				rq.Accepted, rq.CallID, rq.RoomName, rq.Replayed = true, cr.CallID, cr.RoomName, a.replayed
			})
			id = cr.CallID
			return true
		case !retryableStatus(a.code):
			q(func(rq *Request) { rq.Refused = fmt.Sprintf("%d %s", a.code, bytes.TrimSpace(a.body)) })
			return true
		}
		return false
	})
	if unsettled != "" {
		q(func(rq *Request) { rq.Unsettled = unsettled })
	}
	return id
}

// cancelCall waits after, then cancels the accepted call id until ingest
// gives a final answer: 202 (the cancel is written) or 409 (the call had
// already ended; the body names its outcome). A 404 is retried: ingest may
// not see its own write of the call yet. The answers go to the request's
// CancelAsk.
func (r *Recorder) cancelCall(ctx context.Context, c Client, retryFor time.Duration, key, id string, after time.Duration) {
	q := func(f func(*CancelAsk)) { r.settle(func() { f(&r.requests[key].Cancel) }) }
	if !backoff.Sleep(ctx, after) {
		q(func(ca *CancelAsk) { ca.Unsettled = errStopped.Error() + " before the cancel was sent" })
		return
	}
	q(func(ca *CancelAsk) { ca.Sent = time.Now() })
	unsettled := retrying(ctx, retryFor, 250*time.Millisecond, func() (httpAnswer, error) {
		a, err := c.send(ctx, "/v1/api/call/"+id+"/cancel", "", []byte(`{"reason":"load client"}`))
		q(func(ca *CancelAsk) { ca.Answers = append(ca.Answers, answerOf(a, err)) })
		return a, err
	}, func(a httpAnswer) bool {
		switch {
		case a.code == http.StatusAccepted:
			q(func(ca *CancelAsk) { ca.Code = a.code })
			return true
		case a.code == http.StatusConflict:
			var body struct {
				Call struct {
					Outcome string `json:"outcome"`
				} `json:"call"`
			}
			_ = json.Unmarshal(a.body, &body)
			q(func(ca *CancelAsk) { ca.Code, ca.Outcome = a.code, body.Call.Outcome })
			return true
		case a.code != http.StatusNotFound && !retryableStatus(a.code):
			q(func(ca *CancelAsk) {
				ca.Code, ca.Refused = a.code, fmt.Sprintf("%d %s", a.code, bytes.TrimSpace(a.body))
			})
			return true
		}
		return false
	})
	if unsettled != "" {
		q(func(ca *CancelAsk) { ca.Unsettled = unsettled })
	}
}

// retrying sends until final takes an answer as final, waiting between
// attempts as a careful client does (the answer's Retry-After, at least
// floor, at most 2 s), for at most retryFor. It returns "" once an answer
// was final, else why it stopped.
func retrying(ctx context.Context, retryFor, floor time.Duration, send func() (httpAnswer, error), final func(httpAnswer) bool) string {
	deadline := time.Now().Add(retryFor)
	for {
		a, err := send()
		if err == nil && final(a) {
			return ""
		}
		last := fmt.Sprintf("%d %s", a.code, bytes.TrimSpace(a.body))
		if err != nil {
			last = err.Error()
		}
		wait := min(max(a.retryAfter, floor), 2*time.Second)
		if time.Now().Add(wait).After(deadline) {
			return fmt.Sprintf("still %s after %s", last, retryFor)
		}
		if !backoff.Sleep(ctx, wait) {
			return fmt.Sprintf("%v (last answer: %s)", errStopped, last)
		}
	}
}

// answerOf is how an attempt's answer is recorded: its status code, or
// AnswerTransport.
func answerOf(a httpAnswer, err error) string {
	if err != nil {
		return AnswerTransport
	}
	return strconv.Itoa(a.code)
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
	return c.send(ctx, "/v1/api/call", key, body)
}

// send POSTs body to ingest's path as the client's workspace, with key as
// the Idempotency-Key unless it is empty.
func (c Client) send(ctx context.Context, path, key string, body []byte) (httpAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.IngestURL+path, bytes.NewReader(body))
	if err != nil {
		return httpAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.APIKey)
	req.Header.Set("x-workspace-id", c.WorkspaceID)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
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
