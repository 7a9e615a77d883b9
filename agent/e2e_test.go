package agent_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/dialstream/dialstream/agent"
	"github.com/dialstream/dialstream/internal/livekitdev"
	"github.com/dialstream/dialstream/internal/phonesim"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// End-to-end: a real livekit-server (in-process Redis), the phone simulator
// on its SIP bus, and the reference agent registered as a worker. The test
// plays the dialer (room, dispatch with agent.dispatch.v1 metadata,
// CreateSIPParticipant) and Dialstream's report endpoint (an HTTP server that
// checks the report token and, for a transfer, calls TransferSIPParticipant
// as the dialer will). It skips when the livekit-server binary is absent,
// except in CI.

const (
	agentName   = "dialstream-test-agent"
	workspace   = "ws_test"
	callAgentID = "a1b2c3d4e5f6a7b8c9d0e1f2"
	// canary is put in every call's metadata: it must reach the dispatch
	// and never anything the callee receives.
	canary     = "CANARY-7f3a9c1e-metadata-only"
	transferTo = "+15550100777"
)

var reportSecret = []byte("test-report-secret-0123456789abcdef")

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv(childEnv) != "" {
		os.Exit(runChildAgent())
	}
	lksdk.SetLogger(phonesim.NewSDKLogger(testLogger()))
	os.Exit(m.Run())
}

func testLogger() *slog.Logger {
	if os.Getenv("AGENT_TEST_LOGS") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

// env is LiveKit, the phone simulator, the fake report endpoint and the
// clients the dialer would use.
type env struct {
	lk       *livekitdev.Server
	sim      *phonesim.Sim
	rooms    *lksdk.RoomServiceClient
	sip      *lksdk.SIPClient
	dispatch *lksdk.AgentDispatchClient
	trunk    string
	reports  *reportEndpoint
}

func startEnv(t *testing.T, ring time.Duration) *env {
	t.Helper()
	// AGENT_TEST_LIVEKIT_LOGS=info (or debug, warn) prints livekit-server's log.
	var lkLogs io.Writer
	level := os.Getenv("AGENT_TEST_LIVEKIT_LOGS")
	if level != "" {
		lkLogs = os.Stderr
	} else {
		level = "warn"
	}
	lk := livekitdev.StartT(t, livekitdev.Config{LogWriter: lkLogs, LogLevel: level})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sim, err := phonesim.Start(ctx, phonesim.Config{
		RedisAddr: lk.RedisAddr(), LiveKitURL: lk.URL(), APIKey: lk.APIKey(), APISecret: lk.APISecret(),
		RingDuration: ring, TalkDuration: 3 * time.Second, Logger: testLogger(), Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sim.Close(); err != nil {
			t.Errorf("phonesim close: %v", err)
		}
	})
	e := &env{
		lk: lk, sim: sim,
		rooms:    lksdk.NewRoomServiceClient(lk.URL(), lk.APIKey(), lk.APISecret()),
		sip:      lksdk.NewSIPClient(lk.URL(), lk.APIKey(), lk.APISecret()),
		dispatch: lksdk.NewAgentDispatchServiceClient(lk.URL(), lk.APIKey(), lk.APISecret()),
	}
	trunk, err := e.sip.CreateSIPOutboundTrunk(ctx, &livekit.CreateSIPOutboundTrunkRequest{Trunk: &livekit.SIPOutboundTrunkInfo{
		Name: "phonesim", Address: "phonesim.invalid", Numbers: []string{"+15550109999"},
	}})
	if err != nil {
		t.Fatalf("CreateSIPOutboundTrunk: %v", err)
	}
	e.trunk = trunk.SipTrunkId
	e.reports = newReportEndpoint(t, e.sip)
	return e
}

// startAgent runs the reference agent in this process until the test ends
// and returns its ops address once it is ready (registered with LiveKit).
func (e *env) startAgent(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	return e.startAgentMax(t, reg, 200)
}

// startAgentMax is startAgent with AGENT_MAX_JOBS set to maxJobs.
func (e *env) startAgentMax(t *testing.T, reg *prometheus.Registry, maxJobs int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- agent.Run(ctx, agent.Config{
			LiveKitURL: e.lk.URL(), APIKey: e.lk.APIKey(), APISecret: e.lk.APISecret(),
			AgentNames: []string{agentName}, Listener: ln, Logger: testLogger(), Metrics: reg,
			MaxJobs: maxJobs, DrainTimeout: 5 * time.Second,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent.Run: %v", err)
		}
	})
	addr := ln.Addr().String()
	waitReady(t, addr)
	return addr
}

func waitReady(t *testing.T, addr string) {
	t.Helper()
	testutil.EventuallyWhy(t, 20*time.Second, "agent ready", func() (bool, string) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK, string(b)
	})
}

// callSpec is one call as the dialer would place it.
type callSpec struct {
	to       string
	vars     map[string]string
	settings map[string]any
	// metadata overrides the dispatch metadata as sent (to send an invalid one).
	rawDispatch string
}

type placed struct {
	callID, room string
}

// place creates the room, dispatches the agent and calls the callee, as
// dialer/dial.go does, with wait_until_answered.
func (e *env) place(t *testing.T, c callSpec) placed {
	t.Helper()
	p, err := e.tryPlace(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tryPlace is place for goroutines other than the test's.
func (e *env) tryPlace(c callSpec) (placed, error) {
	p := placed{callID: randHex(12), room: callAgentID + "-" + randHex(5)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.rooms.CreateRoom(ctx, &livekit.CreateRoomRequest{Name: p.room, EmptyTimeout: 60, DepartureTimeout: 10}); err != nil {
		return p, fmt.Errorf("CreateRoom: %w", err)
	}
	meta := c.rawDispatch
	if meta == "" {
		d := schemas.AgentDispatch{
			CallID: p.callID, WorkspaceID: workspace, CallAgentID: callAgentID, Room: p.room, To: c.to, From: "+15550109999",
			DynamicVariables: c.vars,
			Metadata:         json.RawMessage(`{"canary":"` + canary + `","crm":{"id":42,"tags":["<vip>","a&b"]}}`),
			Settings:         c.settings,
			Report:           e.reports.channel(p.callID, p.room),
		}
		var err error
		if meta, err = d.Encode(); err != nil {
			return p, err
		}
	}
	if _, err := e.dispatch.CreateDispatch(ctx, &livekit.CreateAgentDispatchRequest{AgentName: agentName, Room: p.room, Metadata: meta}); err != nil {
		return p, fmt.Errorf("CreateDispatch: %w", err)
	}
	_, err := e.sip.CreateSIPParticipant(ctx, &livekit.CreateSIPParticipantRequest{
		SipTrunkId: e.trunk, SipCallTo: c.to, SipNumber: "+15550109999", RoomName: p.room,
		ParticipantIdentity: "callee", ParticipantName: "callee",
		RingingTimeout: durationpb.New(10 * time.Second), MaxCallDuration: durationpb.New(2 * time.Minute),
		WaitUntilAnswered: true,
	})
	if err != nil {
		return p, fmt.Errorf("CreateSIPParticipant %s: %w", c.to, err)
	}
	return p, nil
}

// ended waits for the callee's side of the call to end and returns what
// the callee received.
func (e *env) ended(t *testing.T, room string, within time.Duration) phonesim.Dial {
	t.Helper()
	var d phonesim.Dial
	testutil.EventuallyWhy(t, within, "the call to end at the callee", func() (bool, string) {
		var ok bool
		d, ok = e.sim.DialTo(room)
		return ok && d.EndedAt != nil, fmt.Sprintf("%+v", d)
	})
	return d
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// reportEndpoint is Dialstream's report endpoint as the agent sees it:
// bearer report token checked for the call in the URL, body validated
// against agent.report.v1, a transfer carried out through LiveKit.
type reportEndpoint struct {
	t   *testing.T
	srv *httptest.Server
	sip *lksdk.SIPClient

	mu      sync.Mutex
	rooms   map[string]string // call id -> room
	reports map[string][]schemas.AgentReport
	bodies  map[string][]string
}

func newReportEndpoint(t *testing.T, sip *lksdk.SIPClient) *reportEndpoint {
	r := &reportEndpoint{t: t, sip: sip, rooms: map[string]string{}, reports: map[string][]schemas.AgentReport{}, bodies: map[string][]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/agent/calls/{callId}/reports", r.serve)
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *reportEndpoint) channel(callID, room string) *schemas.ReportChannel {
	r.mu.Lock()
	r.rooms[callID] = room
	r.mu.Unlock()
	exp := time.Now().Add(10 * time.Minute)
	return &schemas.ReportChannel{
		URL:       r.srv.URL + "/v1/agent/calls/" + callID + "/reports",
		Token:     schemas.MintReportToken(reportSecret, callID, workspace, exp),
		ExpiresAt: exp.UTC().Truncate(time.Second),
	}
}

func (r *reportEndpoint) serve(w http.ResponseWriter, req *http.Request) {
	callID := req.PathValue("callId")
	tok, _ := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if ws, err := schemas.VerifyReportToken([][]byte{reportSecret}, tok, callID, time.Now()); err != nil || ws != workspace {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	rep, err := schemas.DecodeAgentReport(body)
	if err != nil {
		r.t.Errorf("agent sent an invalid report: %v: %s", err, body)
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	r.mu.Lock()
	r.reports[callID] = append(r.reports[callID], rep)
	r.bodies[callID] = append(r.bodies[callID], string(body))
	room := r.rooms[callID]
	r.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
	if rep.Type == schemas.ReportTypeTransfer {
		// What the dialer does with a transfer report: LiveKit's SIP REFER.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := r.sip.TransferSIPParticipant(ctx, &livekit.TransferSIPParticipantRequest{
				RoomName: room, ParticipantIdentity: "callee", TransferTo: "tel:" + rep.Transfer.To,
			}); err != nil {
				r.t.Errorf("TransferSIPParticipant: %v", err)
			}
		}()
	}
}

func (r *reportEndpoint) of(callID string) ([]schemas.AgentReport, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]schemas.AgentReport(nil), r.reports[callID]...), append([]string(nil), r.bodies[callID]...)
}

// waitReports waits until the call's reports have the given types, in order.
func (r *reportEndpoint) waitReports(t *testing.T, callID string, want ...schemas.ReportType) []schemas.AgentReport {
	t.Helper()
	var got []schemas.AgentReport
	testutil.EventuallyWhy(t, 30*time.Second, fmt.Sprintf("reports %v", want), func() (bool, string) {
		got, _ = r.of(callID)
		types := make([]schemas.ReportType, len(got))
		for i, g := range got {
			types[i] = g.Type
		}
		return fmt.Sprint(types) == fmt.Sprint(want), fmt.Sprint(types)
	})
	return got
}
