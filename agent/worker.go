package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/proto"

	"github.com/dialstream/dialstream/internal/backoff"
	"github.com/dialstream/dialstream/schemas"
)

// LiveKit's agent worker protocol, as livekit-server v1.13 speaks it
// (pkg/service/agentservice.go) and livekit/agents' worker.py uses it:
//
//  1. The worker opens a WebSocket to <LIVEKIT_URL>/agent with a token that
//     has the agent grant, and sends RegisterWorkerRequest{type JT_ROOM,
//     agent_name}. The server answers RegisterWorkerResponse; until then it
//     reads nothing else, and it gives up after 10 s.
//  2. For each dispatch of that agent name the server sends an
//     AvailabilityRequest{job}; the worker answers AvailabilityResponse
//     {available, participant identity/name} within 10 s (AssignJobTimeout).
//     A refusal makes the server try another worker of the same name.
//  3. On acceptance the server sends JobAssignment{job, token, url?}: the
//     token joins the job's room as an agent participant.
//  4. The worker sends UpdateJobStatus as the job runs and ends (JS_SUCCESS
//     or JS_FAILED), UpdateWorkerStatus{load, status} every few seconds
//     (the server only offers jobs to workers whose last status is
//     WS_AVAILABLE), and leaves the room on JobTermination.
//
// Messages are protobuf in binary WebSocket frames. The server pings every
// 10 s at the WebSocket level; a connection silent for longer than
// readTimeout is taken for dead and replaced.
const (
	workerVersion     = "dialstream-agent/1"
	registerTimeout   = 10 * time.Second
	assignmentTimeout = 10 * time.Second
	statusInterval    = 2500 * time.Millisecond
	readTimeout       = 30 * time.Second
	writeTimeout      = 5 * time.Second
)

var errNotConnected = errors.New("worker not connected")

// worker is one agent name's connection to LiveKit. It reconnects for as long
// as the service runs; calls it accepted go on across reconnects (they are in
// their rooms, not on this connection).
type worker struct {
	s    *service
	name string
	log  *slog.Logger

	registered atomic.Bool

	mu      sync.Mutex // guards conn (writes), pending, running
	conn    *websocket.Conn
	pending map[string]pendingJob
	running map[string]context.CancelFunc
}

// pendingJob is a job the worker said yes to and waits to be assigned.
type pendingJob struct {
	dispatch schemas.AgentDispatch
	expire   *time.Timer
}

func newWorker(s *service, name string) *worker {
	return &worker{s: s, name: name, log: s.log.With("agent_name", name),
		pending: map[string]pendingJob{}, running: map[string]context.CancelFunc{}}
}

// run keeps the worker registered until ctx ends.
func (w *worker) run(ctx context.Context) {
	wait := backoff.Doubling{Next: w.s.cfg.ReconnectDelay, Max: 10 * time.Second}
	for {
		started := time.Now()
		err := w.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > time.Minute {
			wait.Next = w.s.cfg.ReconnectDelay
		}
		w.log.Warn("agent: worker connection lost, reconnecting", "err", err, "in", wait.Next)
		if !wait.Wait(ctx) {
			return
		}
	}
}

// session is one connection: register, then serve until it breaks or ctx ends.
func (w *worker) session(ctx context.Context) error {
	conn, err := w.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() {
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "shutting down"), time.Now().Add(time.Second))
		_ = conn.Close()
	})
	defer stop()

	w.mu.Lock()
	w.conn = conn
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.conn = nil
		w.mu.Unlock()
		if w.registered.Swap(false) {
			w.s.m.registered.Dec()
		}
	}()

	if err := w.register(conn); err != nil {
		return err
	}
	w.log.Info("agent: worker registered with LiveKit")
	w.registered.Store(true)
	w.s.m.registered.Inc()

	statusDone := make(chan struct{})
	defer close(statusDone)
	go w.reportStatus(statusDone)

	conn.SetPingHandler(func(data string) error {
		_ = conn.SetReadDeadline(time.Now().Add(readTimeout))
		return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeTimeout))
	})
	for {
		_ = conn.SetReadDeadline(time.Now().Add(readTimeout))
		msg, err := readServerMessage(conn)
		if err != nil {
			return fmt.Errorf("agent: read from livekit: %w", err)
		}
		switch m := msg.Message.(type) {
		case *livekit.ServerMessage_Availability:
			w.onAvailability(m.Availability.GetJob())
		case *livekit.ServerMessage_Assignment:
			w.onAssignment(m.Assignment)
		case *livekit.ServerMessage_Termination:
			w.onTermination(m.Termination.GetJobId())
		}
	}
}

func (w *worker) dial(ctx context.Context) (*websocket.Conn, error) {
	u, err := agentURL(w.s.cfg.LiveKitURL)
	if err != nil {
		return nil, err
	}
	token, err := auth.NewAccessToken(w.s.cfg.APIKey, w.s.cfg.APISecret).
		SetVideoGrant(&auth.VideoGrant{Agent: true}).
		SetValidFor(time.Hour).
		ToJWT()
	if err != nil {
		return nil, fmt.Errorf("agent: worker token: %w", err)
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.DialContext(ctx, u, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("agent: connect %s: HTTP %d: %w", u, resp.StatusCode, err)
		}
		return nil, fmt.Errorf("agent: connect %s: %w", u, err)
	}
	return conn, nil
}

// agentURL turns LIVEKIT_URL into the worker endpoint: ws(s)://host/agent.
func agentURL(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("agent: LIVEKIT_URL: %w", err)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/agent"
	return u.String(), nil
}

func (w *worker) register(conn *websocket.Conn) error {
	err := w.send(&livekit.WorkerMessage{Message: &livekit.WorkerMessage_Register{Register: &livekit.RegisterWorkerRequest{
		Type:      livekit.JobType_JT_ROOM,
		AgentName: w.name,
		Version:   workerVersion,
		AllowedPermissions: &livekit.ParticipantPermission{
			CanSubscribe: true, CanPublish: true, CanPublishData: true, CanUpdateMetadata: true, Agent: true,
		},
	}}})
	if err != nil {
		return fmt.Errorf("agent: send register: %w", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(registerTimeout))
	msg, err := readServerMessage(conn)
	if err != nil {
		return fmt.Errorf("agent: wait for registration: %w", err)
	}
	if msg.GetRegister() == nil {
		return fmt.Errorf("agent: expected a register response first, got %T", msg.Message)
	}
	return nil
}

func readServerMessage(conn *websocket.Conn) (*livekit.ServerMessage, error) {
	for {
		typ, b, err := conn.ReadMessage()
		if err != nil {
			return nil, err
		}
		if typ != websocket.BinaryMessage {
			continue
		}
		msg := &livekit.ServerMessage{}
		if err := proto.Unmarshal(b, msg); err != nil {
			return nil, fmt.Errorf("decode server message: %w", err)
		}
		return msg, nil
	}
}

func (w *worker) send(msg *livekit.WorkerMessage) error {
	b, err := proto.Marshal(msg)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn == nil {
		return errNotConnected
	}
	_ = w.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	return w.conn.WriteMessage(websocket.BinaryMessage, b)
}

// reportStatus tells LiveKit the process's load every statusInterval. The
// status is the process's, not the connection's: every name shares MaxJobs.
func (w *worker) reportStatus(done <-chan struct{}) {
	t := time.NewTicker(statusInterval)
	defer t.Stop()
	for {
		w.sendStatus()
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

func (w *worker) sendStatus() {
	load, jobs, full := w.s.slots.state()
	status := livekit.WorkerStatus_WS_AVAILABLE
	if full {
		status = livekit.WorkerStatus_WS_FULL
	}
	_ = w.send(&livekit.WorkerMessage{Message: &livekit.WorkerMessage_UpdateWorker{UpdateWorker: &livekit.UpdateWorkerStatus{
		Status: &status, Load: load, JobCount: uint32(jobs),
	}}})
}

// onAvailability answers a job offer. The dispatch is validated here, before
// saying yes: a job whose metadata is not agent.dispatch.v1 (or names another
// room) is not a Dialstream call this agent can place, and refusing it lets
// LiveKit log why no agent joined, instead of an agent that joins and says
// nothing.
func (w *worker) onAvailability(job *livekit.Job) {
	if job == nil {
		return
	}
	log := w.log.With("job_id", job.GetId(), "room", job.GetRoom().GetName())
	answer := &livekit.AvailabilityResponse{JobId: job.GetId()}
	d, err := schemas.DecodeAgentDispatch(job.GetMetadata())
	if err == nil && d.Room != job.GetRoom().GetName() {
		err = fmt.Errorf("dispatch names room %q", d.Room)
	}
	switch {
	case err != nil:
		w.s.m.jobRequests.WithLabelValues(string(jobInvalidDispatch)).Inc()
		log.Warn("agent: job refused: dispatch metadata is not agent.dispatch.v1", "err", err)
	case !w.s.slots.take():
		w.s.m.jobRequests.WithLabelValues(string(jobFull)).Inc()
		log.Info("agent: job refused: at capacity", "max_jobs", w.s.cfg.MaxJobs)
	default:
		answer.Available = true
		answer.ParticipantIdentity = "agent-" + job.GetId()
		answer.ParticipantName = w.name
		answer.ParticipantAttributes = map[string]string{"dialstream.call_id": d.CallID}
		id := job.GetId()
		w.mu.Lock()
		w.pending[id] = pendingJob{dispatch: d, expire: time.AfterFunc(assignmentTimeout, func() { w.expire(id) })}
		w.mu.Unlock()
		w.s.m.jobRequests.WithLabelValues(string(jobAccepted)).Inc()
	}
	if err := w.send(&livekit.WorkerMessage{Message: &livekit.WorkerMessage_Availability{Availability: answer}}); err != nil {
		log.Warn("agent: answer job offer", "err", err)
	}
	if answer.Available {
		w.sendStatus()
	}
}

// expire frees the slot of an accepted job that was never assigned (the
// server gave it to another worker, or timed out).
func (w *worker) expire(id string) {
	w.mu.Lock()
	_, ok := w.pending[id]
	delete(w.pending, id)
	w.mu.Unlock()
	if ok {
		w.s.slots.release()
		w.log.Info("agent: accepted job was never assigned", "job_id", id)
	}
}

func (w *worker) onAssignment(a *livekit.JobAssignment) {
	job := a.GetJob()
	id := job.GetId()
	w.mu.Lock()
	p, ok := w.pending[id]
	delete(w.pending, id)
	w.mu.Unlock()
	if !ok {
		w.log.Warn("agent: assignment for a job not accepted here (or accepted too long ago)", "job_id", id)
		w.jobStatus(id, livekit.JobStatus_JS_FAILED, "assignment arrived after the worker gave the job up")
		return
	}
	p.expire.Stop()
	joinURL := a.GetUrl()
	if joinURL == "" {
		joinURL = w.s.cfg.LiveKitURL
	}
	callCtx, cancel := context.WithCancel(w.s.callsCtx)
	w.mu.Lock()
	w.running[id] = cancel
	w.mu.Unlock()
	w.s.calls.Add(1)
	go func() {
		defer w.s.calls.Done()
		defer w.s.slots.release()
		defer cancel()
		w.jobStatus(id, livekit.JobStatus_JS_RUNNING, "")
		err := w.s.runCall(callCtx, job, p.dispatch, joinURL, a.GetToken())
		w.mu.Lock()
		delete(w.running, id)
		w.mu.Unlock()
		if err != nil {
			w.jobStatus(id, livekit.JobStatus_JS_FAILED, schemas.Clip(err.Error(), 512))
			return
		}
		w.jobStatus(id, livekit.JobStatus_JS_SUCCESS, "")
	}()
}

func (w *worker) onTermination(id string) {
	w.mu.Lock()
	cancel := w.running[id]
	w.mu.Unlock()
	if cancel != nil {
		w.log.Info("agent: LiveKit ended the job", "job_id", id)
		cancel()
	}
}

// jobStatus tells LiveKit how a job goes. Lost when the connection is down:
// the server then ends the job itself when the room closes.
func (w *worker) jobStatus(id string, status livekit.JobStatus, errText string) {
	if err := w.send(&livekit.WorkerMessage{Message: &livekit.WorkerMessage_UpdateJob{UpdateJob: &livekit.UpdateJobStatus{
		JobId: id, Status: status, Error: errText,
	}}}); err != nil && !errors.Is(err, errNotConnected) {
		w.log.Warn("agent: send job status", "job_id", id, "err", err)
	}
}

// slots is the process's capacity, shared by every worker connection.
type slots struct {
	mu       sync.Mutex
	max      int
	target   float64 // LiveKit's target load: what a full worker reports (Config.TargetLoad)
	used     int
	draining bool
	active   interface{ Set(float64) }
}

func (s *slots) take() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining || s.used >= s.max {
		return false
	}
	s.used++
	s.active.Set(float64(s.used))
	return true
}

func (s *slots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.used--
	s.active.Set(float64(s.used))
}

// drain stops taking jobs (shutdown): every worker reports itself full.
func (s *slots) drain() {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
}

// state is what the worker tells LiveKit: its load, the share of max in
// use scaled to LiveKit's target load (LiveKit offers no job to a worker at
// or above it, and prefers the worker furthest below it), its jobs, and
// whether it is full.
func (s *slots) state() (load float32, jobs int, full bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return float32(s.target * float64(min(s.used, s.max)) / float64(s.max)), s.used, s.draining || s.used >= s.max
}
