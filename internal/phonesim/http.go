package phonesim

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// dialsResponse is the body of GET /dials. Tests running the simulator in
// another process read it to count dials per room.
type dialsResponse struct {
	Dials  []Dial         `json:"dials"`
	ByRoom map[string]int `json:"byRoom"`
}

func (s *Sim) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /dials", func(w http.ResponseWriter, _ *http.Request) {
		dials := s.DialLog()
		byRoom := make(map[string]int)
		for _, d := range dials {
			byRoom[d.Room]++
		}
		if dials == nil {
			dials = []Dial{}
		}
		writeJSON(w, http.StatusOK, dialsResponse{Dials: dials, ByRoom: byRoom})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if s.ctx.Err() != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "closing"})
			return
		}
		// Without Redis no SIP request can reach the simulator.
		if err := s.rc.Ping(r.Context()).Err(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "redis unreachable"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	if g, ok := s.cfg.Registerer.(prometheus.Gatherer); ok {
		mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	}
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
