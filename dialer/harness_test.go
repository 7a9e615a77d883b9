package dialer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twitchtv/twirp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/internal/ops"
	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

const (
	testAPIKey    = "devkey"
	testAPISecret = "dialstream-test-secret-0123456789abcdef"
)

func newCallID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func testLogger() *slog.Logger {
	if os.Getenv("DIALER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startBroker starts an in-memory embedded broker with short group timeouts.
func startBroker(t testing.TB, partitions int) *kafkax.Broker {
	t.Helper()
	b, err := kafkax.StartBroker(kafkax.BrokerConfig{Listen: "127.0.0.1:0", Partitions: partitions, MinSessionTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func testConfig(t testing.TB, brokerAddr string, reg *registry.Registry) Config {
	return Config{
		Kafka: kafkax.Config{Brokers: []string{brokerAddr}, ClientID: "dialer-test", Partitions: 3,
			ReplicationFactor: -1, CreateTopics: true, SessionTimeout: time.Second},
		HTTPAddr: freeAddr(t), Group: DefaultGroup, MaxQueuedPerPartition: 1000,
		WatchdogInterval: 100 * time.Millisecond, WatchdogGrace: time.Second, RoomCheckInterval: time.Second,
		MaxQueueWait: time.Hour, EndedRetention: time.Hour, DrainTimeout: 5 * time.Second,
		LiveKitAPIKey: testAPIKey, LiveKitAPISecret: testAPISecret, Registry: reg, Logger: testLogger(),
	}
}

// runningDialer is a dialer.Run in a goroutine.
type runningDialer struct {
	t      testing.TB
	cancel context.CancelFunc
	done   chan error
	addr   string
	reg    *prometheus.Registry
	once   sync.Once
}

func startDialer(t testing.TB, cfg Config) *runningDialer {
	t.Helper()
	cfg.Metrics = obs.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningDialer{t: t, cancel: cancel, done: make(chan error, 1), addr: cfg.HTTPAddr, reg: cfg.Metrics}
	go func() { r.done <- Run(ctx, cfg) }()
	t.Cleanup(func() { r.stop(t) })
	testutil.Eventually(t, 20*time.Second, "dialer ready", func() bool {
		select {
		case err := <-r.done:
			r.done <- err
			t.Fatalf("dialer exited: %v", err)
		default:
		}
		return ready(t, r.addr)
	})
	return r
}

// ready asks a dialer's /readyz, which must answer in the one ops format:
// 200 {"status":"ready"} or 503 {"status":"not_ready","reason":...}.
func ready(t testing.TB, addr string) bool {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return false // not listening yet
	}
	defer resp.Body.Close()
	var st ops.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("/readyz answered %d in no JSON: %v", resp.StatusCode, err)
	}
	switch {
	case resp.StatusCode == http.StatusOK && st == ops.Status{Status: "ready"}:
		return true
	case resp.StatusCode == http.StatusServiceUnavailable && st.Status == "not_ready" && st.Reason != "":
		return false
	}
	t.Fatalf("/readyz answered %d %+v; want 200 ready or 503 not_ready with a reason", resp.StatusCode, st)
	return false
}

// metric returns the value of a counter or gauge, summed over the series
// matching the given label values. No such series fails the test: a renamed
// metric or label must not read as zero.
func (r *runningDialer) metric(name string, labels ...string) float64 {
	r.t.Helper()
	sum, n := series(r.reg, name, labels...)
	if n == 0 {
		r.t.Fatalf("no series %s%v", name, labels)
	}
	return sum
}

// series sums the counter and gauge values of the series of name that carry
// the given label values, and counts them.
func series(g prometheus.Gatherer, name string, labels ...string) (sum float64, n int) {
	mfs, _ := g.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
				}
				if !found {
					continue next
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			n++
		}
	}
	return sum, n
}

func (r *runningDialer) stop(t testing.TB) {
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("dialer.Run: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Errorf("dialer did not stop")
		}
	})
}

// kafkaLog collects the records of the events and DLQ topics.
type kafkaLog struct {
	mu     sync.Mutex
	events []loggedEvent
	dlq    []*kgo.Record
	cmds   []*kgo.Record
}

type loggedEvent struct {
	id string
	ts time.Time // the event record's timestamp: when it was written
	ev schemas.CallEvent
}

type timedEvent struct {
	requestTS time.Time // occurred_at (for queued: the request record's timestamp)
	written   time.Time
}

// timedEvents returns, per status, when a call's event says it happened and
// when its first copy was written.
func (l *kafkaLog) timedEvents(callID string) map[schemas.Status]timedEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[schemas.Status]timedEvent{}
	for _, e := range l.events {
		if e.ev.CallID != callID {
			continue
		}
		if _, ok := out[e.ev.Status]; !ok {
			out[e.ev.Status] = timedEvent{requestTS: e.ev.OccurredAt, written: e.ts}
		}
	}
	return out
}

func collect(t testing.TB, brokerAddr string) *kafkaLog {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokerAddr),
		kgo.ConsumeTopics(schemas.TopicEvents, schemas.TopicRequestsDLQ, schemas.TopicRequested),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond),
		kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	l := &kafkaLog{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				l.mu.Lock()
				defer l.mu.Unlock()
				switch r.Topic {
				case schemas.TopicRequestsDLQ:
					l.dlq = append(l.dlq, r)
				case schemas.TopicRequested:
					l.cmds = append(l.cmds, r)
				case schemas.TopicEvents:
					e, err := schemas.Decode(r)
					if err != nil {
						panic(fmt.Sprintf("invalid event on %s: %v", r.Topic, err))
					}
					var ev schemas.CallEvent
					_ = json.Unmarshal(e.Data, &ev)
					l.events = append(l.events, loggedEvent{id: e.ID, ts: r.Timestamp, ev: ev})
				}
			})
		}
	}()
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	return l
}

// callEvents returns a call's events de-duplicated by CloudEvent id, in
// sequence order, and fails if one id was used for two different events.
func (l *kafkaLog) callEvents(t testing.TB, callID string) []schemas.CallEvent {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	byID := map[string]schemas.CallEvent{}
	for _, e := range l.events {
		if e.ev.CallID != callID {
			continue
		}
		if prev, ok := byID[e.id]; ok {
			if prev.Status != e.ev.Status || prev.Sequence != e.ev.Sequence || prev.Outcome != e.ev.Outcome {
				t.Fatalf("ce_id %s used for two different events: %+v and %+v", e.id, prev, e.ev)
			}
			continue
		}
		byID[e.id] = e.ev
	}
	out := make([]schemas.CallEvent, 0, len(byID))
	for _, ev := range byID {
		out = append(out, ev)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Sequence < out[j].Sequence })
	return out
}

func (l *kafkaLog) ended(t testing.TB, callID string) *schemas.CallEvent {
	evs := l.callEvents(t, callID)
	for i := range evs {
		if evs[i].Status == schemas.StatusEnded {
			return &evs[i]
		}
	}
	return nil
}

func (l *kafkaLog) dlqRecords() []*kgo.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*kgo.Record(nil), l.dlq...)
}

func (l *kafkaLog) commandsOfType(typ string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.cmds {
		if kafkax.Header(r, schemas.HeaderType) == typ {
			n++
		}
	}
	return n
}

// checkLifecycle asserts a call's de-duplicated events are sequence 1..n,
// start queued, follow the lifecycle order, and end once with outcome.
func checkLifecycle(t testing.TB, evs []schemas.CallEvent, outcome schemas.Outcome) {
	t.Helper()
	order := map[schemas.Status]int{schemas.StatusQueued: 0, schemas.StatusDialing: 1, schemas.StatusRinging: 2, schemas.StatusAnswered: 3, schemas.StatusEnded: 4}
	var got []string
	for _, ev := range evs {
		got = append(got, string(ev.Status))
	}
	if len(evs) == 0 || evs[len(evs)-1].Status != schemas.StatusEnded {
		t.Fatalf("events %v do not end with ended", got)
	}
	for i, ev := range evs {
		if ev.Sequence != i+1 {
			t.Fatalf("events %v: sequence %d at position %d", got, ev.Sequence, i)
		}
		if i > 0 && order[ev.Status] <= order[evs[i-1].Status] {
			t.Fatalf("events %v out of lifecycle order", got)
		}
	}
	if end := evs[len(evs)-1]; end.Outcome != outcome {
		t.Fatalf("events %v: outcome %s (reason %q, sip %d), want %s", got, end.Outcome, end.Reason, end.SIPStatusCode, outcome)
	}
}

// producer writes test records with the default (murmur2) partitioner.
func newProducer(t testing.TB, brokerAddr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokerAddr), kgo.ProducerLinger(0)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func requestRecord(t testing.TB, req schemas.CallRequested) *kgo.Record {
	t.Helper()
	if req.RequestedAt.IsZero() {
		req.RequestedAt = time.Now().UTC()
	}
	r, err := schemas.NewRecord(schemas.TopicRequested, req.CallID, schemas.Meta{Type: schemas.TypeCallRequested, Source: "/test"}, req)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func cancelRecord(t testing.TB, callID, ws string) *kgo.Record {
	t.Helper()
	r, err := schemas.NewRecord(schemas.TopicRequested, callID, schemas.Meta{Type: schemas.TypeCallCancel, Source: "/test"},
		schemas.CallCancel{CallID: callID, WorkspaceID: ws, RequestedAt: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func produce(t testing.TB, cl *kgo.Client, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// fakeLiveKit plays LiveKit and the phone network for component tests. The
// callee's behavior follows the number, like phonesim's scripts.
type fakeLiveKit struct {
	mu           sync.Mutex
	rooms        map[string]*livekit.CreateRoomRequest
	deleted      map[string]int
	dispatches   map[string][]*livekit.CreateAgentDispatchRequest
	dials        map[string]int
	inFlight     int
	maxInFlight  int
	participants map[string][]*livekit.ParticipantInfo
	ringFor      time.Duration
	hangups      map[string]chan struct{}
	transfers    map[string][]string // room -> transfer targets asked for
	// hold, when set, keeps CreateRoom waiting until it is closed or the
	// caller's context ends; held counts the waits.
	hold chan struct{}
	held int
	// down makes CreateRoom and ListParticipants fail as an unreachable
	// server does.
	down bool
	// sipFault, when set, is how the next CreateSIPParticipant fails at the
	// transport, as the SDK reports it (then it is cleared).
	sipFault sipFault
	// roomTimeouts is how many CreateRoom requests from now on time out
	// on their own, as the SDK's per-request deadline reports it, while
	// the caller's context is alive.
	roomTimeouts int
	// dialAt is when each CreateSIPParticipant that reached the phone
	// network was made, in order.
	dialAt []time.Time
	// unhosted rooms are still listed with their participants, but no node
	// hosts them (livekit-server died and came back).
	unhosted map[string]bool
	lists    map[string]int // ListParticipants per room
	// onCreateRoom, when set, is called at each CreateRoom (under mu);
	// createRooms counts them.
	onCreateRoom func()
	createRooms  int
	// routedList is LiveKit with api.enable_psrpc_for_get_list_participants:
	// listing an unhosted room's participants answers "no response from
	// servers" instead of the store's stale list.
	routedList bool
}

func (f *fakeLiveKit) setUnhosted(room string, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unhosted[room] = on
}

// checksOf counts the room's checks: each lists its participants.
func (f *fakeLiveKit) checksOf(room string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists[room]
}

func (f *fakeLiveKit) RoomHosted(_ context.Context, room string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return false, transportError(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	}
	return !f.unhosted[room], nil
}

func (f *fakeLiveKit) dialTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.dialAt)
}

// sipFault is a transport failure of CreateSIPParticipant.
type sipFault int

const (
	noSIPFault sipFault = iota
	// sipRefused: the connection was refused; the request never left.
	sipRefused
	// sipLost: the request reached LiveKit (the phone rings), then the
	// connection broke (LiveKit died: it is down from then on).
	sipLost
	// sipNoService: LiveKit answered that no SIP service took the request.
	sipNoService
)

// transportError is a transport failure as the twirp client returns it.
func transportError(cause error) error {
	return twirp.InternalErrorWith(fmt.Errorf("failed to do request: %w",
		&url.Error{Op: "Post", URL: "http://livekit:7880/twirp/livekit.SIP/CreateSIPParticipant", Err: cause}))
}

func (f *fakeLiveKit) failNextSIP(k sipFault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sipFault = k
}

func (f *fakeLiveKit) setDown(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = on
}

func (f *fakeLiveKit) holdRooms(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if on && f.hold == nil {
		f.hold = make(chan struct{})
	}
	if !on && f.hold != nil {
		close(f.hold)
		f.hold = nil
	}
}

func (f *fakeLiveKit) timeOutRooms(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.roomTimeouts = n
}

func (f *fakeLiveKit) roomsHeld() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held
}

func newFakeLiveKit() *fakeLiveKit {
	return &fakeLiveKit{rooms: map[string]*livekit.CreateRoomRequest{}, deleted: map[string]int{},
		dispatches: map[string][]*livekit.CreateAgentDispatchRequest{}, dials: map[string]int{},
		participants: map[string][]*livekit.ParticipantInfo{}, ringFor: 20 * time.Millisecond, hangups: map[string]chan struct{}{},
		transfers: map[string][]string{}, unhosted: map[string]bool{}, lists: map[string]int{}}
}

var _ liveKit = (*fakeLiveKit)(nil)

func (f *fakeLiveKit) CreateRoom(ctx context.Context, req *livekit.CreateRoomRequest) (*livekit.Room, error) {
	f.mu.Lock()
	f.createRooms++
	if f.onCreateRoom != nil {
		f.onCreateRoom()
	}
	if f.down {
		f.mu.Unlock()
		return nil, twirp.NewError(twirp.Unavailable, "livekit is down (fake)")
	}
	if f.roomTimeouts > 0 {
		f.roomTimeouts--
		f.mu.Unlock()
		return nil, transportError(context.DeadlineExceeded)
	}
	if hold := f.hold; hold != nil {
		f.held++
		f.mu.Unlock()
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		f.mu.Lock()
	}
	defer f.mu.Unlock()
	f.rooms[req.Name] = req
	return &livekit.Room{Name: req.Name, Metadata: req.Metadata}, nil
}

func (f *fakeLiveKit) DeleteRoom(_ context.Context, room string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleted[room]++
	delete(f.rooms, room)
	delete(f.participants, room)
	if ch, ok := f.hangups[room]; ok {
		close(ch)
		delete(f.hangups, room)
	}
	return nil
}

func (f *fakeLiveKit) ListParticipants(_ context.Context, room string) ([]*livekit.ParticipantInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists[room]++
	if f.down {
		return nil, transportError(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	}
	if f.routedList && f.unhosted[room] {
		return nil, twirp.NewError(twirp.Unavailable, "twirp error unknown: no response from servers")
	}
	return append([]*livekit.ParticipantInfo(nil), f.participants[room]...), nil
}

func (f *fakeLiveKit) CreateDispatch(_ context.Context, req *livekit.CreateAgentDispatchRequest) (*livekit.AgentDispatch, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dispatches[req.Room] = append(f.dispatches[req.Room], req)
	return &livekit.AgentDispatch{AgentName: req.AgentName, Room: req.Room, Metadata: req.Metadata}, nil
}

func (f *fakeLiveKit) ListDispatch(_ context.Context, room string) ([]*livekit.AgentDispatch, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*livekit.AgentDispatch
	for _, d := range f.dispatches[room] {
		out = append(out, &livekit.AgentDispatch{AgentName: d.AgentName, Room: d.Room, Metadata: d.Metadata})
	}
	return out, nil
}

// CreateSIPParticipant: ...486 busy, ...603 declined, ...404 not found,
// ...480 rings until the context ends, ...999 answers and stays, anything
// else rings for ringFor then answers.
func (f *fakeLiveKit) CreateSIPParticipant(ctx context.Context, req *livekit.CreateSIPParticipantRequest) (*livekit.SIPParticipantInfo, error) {
	f.mu.Lock()
	switch fault := f.sipFault; fault {
	case sipRefused, sipNoService, sipLost:
		f.sipFault = noSIPFault
		switch fault {
		case sipRefused:
			f.mu.Unlock()
			return nil, transportError(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
		case sipNoService:
			f.mu.Unlock()
			return nil, twirp.NewError(twirp.Unavailable, "twirp error unknown: no response from servers")
		}
		f.dials[req.RoomName]++
		f.down = true
		f.mu.Unlock()
		return nil, transportError(io.EOF)
	}
	f.dials[req.RoomName]++
	f.dialAt = append(f.dialAt, time.Now())
	f.inFlight++
	f.maxInFlight = max(f.maxInFlight, f.inFlight)
	hang := make(chan struct{})
	f.hangups[req.RoomName] = hang
	ring := f.ringFor
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight--
		f.mu.Unlock()
	}()
	status := func(code livekit.SIPStatusCode, text string) error {
		return &livekit.SIPStatus{Code: code, Status: text}
	}
	switch {
	case strings.HasSuffix(req.SipCallTo, "486"):
		return nil, status(livekit.SIPStatusCode_SIP_STATUS_BUSY_HERE, "Busy Here")
	case strings.HasSuffix(req.SipCallTo, "603"):
		return nil, status(livekit.SIPStatusCode_SIP_STATUS_GLOBAL_DECLINE, "Decline")
	case strings.HasSuffix(req.SipCallTo, "404"):
		return nil, status(livekit.SIPStatusCode_SIP_STATUS_NOTFOUND, "Not Found")
	case strings.HasSuffix(req.SipCallTo, "777"): // rings ringFor, then busy
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(ring):
		}
		return nil, status(livekit.SIPStatusCode_SIP_STATUS_BUSY_HERE, "Busy Here")
	case strings.HasSuffix(req.SipCallTo, "480"):
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-hang:
			return nil, status(livekit.SIPStatusCode_SIP_STATUS_REQUEST_TERMINATED, "Request Terminated")
		}
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-hang:
		return nil, status(livekit.SIPStatusCode_SIP_STATUS_REQUEST_TERMINATED, "Request Terminated")
	case <-time.After(ring):
	}
	f.mu.Lock()
	f.participants[req.RoomName] = append(f.participants[req.RoomName], &livekit.ParticipantInfo{
		Identity: req.ParticipantIdentity, Kind: livekit.ParticipantInfo_SIP,
		Attributes: map[string]string{livekit.AttrSIPCallStatus: "active"}})
	f.mu.Unlock()
	return &livekit.SIPParticipantInfo{ParticipantIdentity: req.ParticipantIdentity, RoomName: req.RoomName, SipCallId: "SCL_" + req.RoomName}, nil
}

func (f *fakeLiveKit) TransferSIPParticipant(_ context.Context, req *livekit.TransferSIPParticipantRequest) (*livekit.SIPParticipantInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.transfers[req.RoomName] = append(f.transfers[req.RoomName], req.TransferTo)
	return &livekit.SIPParticipantInfo{ParticipantIdentity: req.ParticipantIdentity, RoomName: req.RoomName}, nil
}

func (f *fakeLiveKit) transfersIn(room string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.transfers[room]...)
}

func (f *fakeLiveKit) dialsTo(room string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dials[room]
}

func (f *fakeLiveKit) deletes(room string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deleted[room]
}

func (f *fakeLiveKit) totalDials() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.dials {
		n += c
	}
	return n
}
