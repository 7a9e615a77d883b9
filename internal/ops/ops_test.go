package ops

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestReadyzOneFormat(t *testing.T) {
	var broken error
	s := &Server{Ready: []Check{func(context.Context) error { return broken }}}
	h := s.Handler()
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, strings.TrimSpace(string(b))
	}
	if code, body := get("/readyz"); code != 200 || body != `{"status":"ready"}` {
		t.Fatalf("ready: %d %s", code, body)
	}
	broken = errors.New("kafka: not reachable")
	if code, body := get("/readyz"); code != 503 || body != `{"status":"not_ready","reason":"kafka: not reachable"}` {
		t.Fatalf("not ready: %d %s", code, body)
	}
	if code, body := get("/healthz"); code != 200 || body != `{"status":"ok"}` {
		t.Fatalf("healthz: %d %s", code, body)
	}
	if code, _ := get("/metrics"); code != 200 {
		t.Fatalf("metrics: %d", code)
	}
}
