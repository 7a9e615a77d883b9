package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	if err := runProbe(context.Background(), []string{srv.URL + "/readyz"}); err != nil {
		t.Errorf("ready: %v", err)
	}
	if err := runProbe(context.Background(), []string{srv.URL + "/other"}); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("not ready: %v, want the status", err)
	}
	if err := runProbe(context.Background(), nil); err == nil {
		t.Error("no URL: no error")
	}
}
