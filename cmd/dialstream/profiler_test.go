package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The profiles are served on their own mux: the heap profile a soak takes,
// the goroutine dump, the index.
func TestProfilerServesProfiles(t *testing.T) {
	srv := httptest.NewServer(profilerHandler())
	defer srv.Close()
	for path, want := range map[string]string{
		"/debug/pprof/":                     "Types of profiles available",
		"/debug/pprof/goroutine?debug=1":    "goroutine profile:",
		"/debug/pprof/heap?debug=1":         "heap profile:",
		"/debug/pprof/heap":                 "\x1f\x8b", // a gzipped protobuf profile, for go tool pprof
		"/debug/pprof/allocs?debug=1":       "heap profile:",
		"/debug/pprof/threadcreate?debug=1": "threadcreate profile:",
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d, body without %q: %.200s", path, resp.StatusCode, want, b)
		}
	}
	resp, err := http.Post(srv.URL+"/debug/pprof/heap", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", resp.StatusCode)
	}
}

// Unset, nothing listens; a taken address fails the start with the
// variable's name.
func TestProfilerAddress(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if err := startProfiler(t.Context(), "", log); err != nil {
		t.Fatalf("unset: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = startProfiler(context.Background(), ln.Addr().String(), log)
	if err == nil || !strings.Contains(err.Error(), profilerAddrEnv) {
		t.Fatalf("taken address: %v, want an error naming %s", err, profilerAddrEnv)
	}
}
