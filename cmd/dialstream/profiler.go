package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// profilerAddrEnv turns on the runtime profiles (Go's net/http/pprof: heap,
// goroutines, CPU, allocations) of whichever process reads it (a service,
// `dialstream broker` or `dialstream dev`) on a listener of their own. Off
// by default: profiles show the process's internals, so bind it to loopback
// (127.0.0.1:6060) or a port only operators reach. `make soak` uses it to
// take heap profiles.
const profilerAddrEnv = "DIALSTREAM_PPROF_ADDR"

// profilerHandler serves the profiles under /debug/pprof/ on a mux of its
// own (not http.DefaultServeMux).
func profilerHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

// startProfiler listens on addr ("" does nothing) and serves the profiles
// until ctx ends. A bad or taken address is an error at start, as for any
// other listener of the process.
func startProfiler(ctx context.Context, addr string, log *slog.Logger) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: %w", profilerAddrEnv, err)
	}
	srv := &http.Server{Handler: profilerHandler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("profiler stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Warn("runtime profiles served: bind this to loopback or an operators' network only", "addr", ln.Addr().String(), "path", "/debug/pprof/")
	return nil
}
