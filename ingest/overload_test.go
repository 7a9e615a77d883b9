package ingest

import (
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Past INGEST_MAX_IN_FLIGHT, a request is a 503 with Retry-After at once,
// writing nothing, while health answers; the requests in flight finish as
// usual and the replica takes requests again.
func TestOverloadAnswersAtOnce(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.MaxInFlight = 3 })
	env.p.block = make(chan struct{})
	env.p.started = make(chan struct{}, 3)
	var wg sync.WaitGroup
	codes := make([]int, 3)
	for i := range 3 {
		wg.Go(func() { codes[i] = env.do(t, req{body: validBody}).Code })
	}
	for range 3 {
		<-env.p.started
	}
	env.p.started = nil

	w := env.do(t, req{body: validBody})
	if w.Code != 503 || w.Header().Get("Retry-After") != "1" || !strings.Contains(w.Body.String(), "limit of 3 requests") {
		t.Fatalf("request over the limit: %d %q %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	if w := env.do(t, req{method: "GET", path: "/v1/api/calls"}); w.Code != 503 {
		t.Fatalf("a read over the limit: %d %s", w.Code, w.Body)
	}
	h := httptest.NewRecorder()
	env.h.ServeHTTP(h, httptest.NewRequest("GET", "/healthz", nil))
	if h.Code != 200 {
		t.Fatalf("healthz while at the limit: %d", h.Code)
	}
	if n := env.p.count(); n != 0 {
		t.Fatalf("%d records written while blocked", n)
	}

	close(env.p.block)
	wg.Wait()
	for i, c := range codes {
		if c != 202 {
			t.Fatalf("request %d in flight: %d", i, c)
		}
	}
	if w := env.do(t, req{body: validBody}); w.Code != 202 {
		t.Fatalf("after the load: %d %s", w.Code, w.Body)
	}
	if n := env.p.count(); n != 4 {
		t.Fatalf("%d records, want the 3 in flight and the one after", n)
	}
}
