package containers

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	mobynet "github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tcnetwork "github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/dialstream/dialstream/internal/livekitdev"
	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/tests/invariants"
)

// The suite's fixed names. Every container of a topology sits on one
// private network and is reached by these aliases; the test process reaches
// a few of them through ports published on 127.0.0.1 only.
const (
	workspaceID = "ws_it"
	agentID     = "c0ffeec0ffeec0ffeec0ffee"
	// plainAgentID is a second registry agent whose LiveKit agent name no
	// worker of the topology serves (its agent runs elsewhere): LiveKit
	// drops its dispatches and its calls talk to an empty room. The plain
	// numbers of the load go through it (see mix).
	plainAgentID = "beefbeefbeefbeefbeefbeef"
	lkAPIKey     = "itkey"
	trunkEnv     = "DIALSTREAM_IT_TRUNK_ID"

	registryPath = "/etc/dialstream/registry.yaml"
	// recordsURL is the call records database when the topology runs a
	// recorder: one SQLite file on a volume that ingest and the recorder
	// both mount (the recorder writes it, ingest reads campaigns from it).
	recordsURL  = "sqlite:///records/records.db"
	livekitPath = "/etc/livekit/livekit.yaml"

	brokerPort   = "9092/tcp"
	redisPort    = "6379/tcp"
	livekitPort  = "7880/tcp"
	phonesimPort = "7890/tcp"
	ingestPort   = "8080/tcp"
	dialerPort   = "8081/tcp"
	notifierPort = "8082/tcp"
	recorderPort = "8084/tcp"
	schedPort    = "8086/tcp"
	receiverPort = "8090/tcp"
	agentPort    = "8085/tcp"

	callbackURL = "http://receiver:8090/hooks/" + workspaceID
)

// registryTemplate is the run's registry. The trunk id comes from the
// environment (${...}), as in production: the test creates the trunk in
// livekit-server and hands its id to the containers.
const registryTemplate = `workspaces:
  - id: ` + workspaceID + `
    name: Container suite
    api_key_sha256: ["%s"]
    webhook_secrets: ["%s"]
    limits: {max_concurrent_calls: 500, calls_per_second: 100, burst: 100, requests_per_second: 1000}
    compliance: {home_country: US, calling_hours: {start: "00:00", end: "24:00"}, max_attempts_per_day: unlimited, max_attempts_per_week: unlimited}
agents:
  - id: ` + agentID + `
    workspace: ` + workspaceID + `
    livekit_agent_name: dialstream-it-agent
    sip_trunk_id: "${` + trunkEnv + `}"
    caller_id: "+15550109999"
    ringing_timeout: 10s
    max_call_duration: 60s
    # What the reference agent (the agent service) reads: a machine
    # answering ends the call (voicemail), a callee asking for a person is
    # transferred.
    settings: {voice: alloy, greeting: "Hello {firstName}, this is the Dialstream suite calling.", on_machine: hangup, transfer_to: "+15550100777"}
  - id: ` + plainAgentID + `
    workspace: ` + workspaceID + `
    livekit_agent_name: dialstream-it-elsewhere
    sip_trunk_id: "${` + trunkEnv + `}"
    caller_id: "+15550109999"
    ringing_timeout: 10s
    max_call_duration: 60s
    settings: {voice: alloy}
`

// topoOptions shape one topology.
type topoOptions struct {
	dialers   int
	notifiers int
	// schedulers > 0 adds that many schedulers (scheduler-1...) and the
	// recorder the campaign routes read through (ingest then shares the
	// recorder's records volume); only the tests that ask for them run them.
	schedulers int
	// recorder adds the recorder (and its records volume, shared with
	// ingest) without a scheduler.
	recorder bool
	// apiNetwork puts LiveKit's API on a second network of its own, which
	// only livekit-server and the dialers join (LIVEKIT_URL
	// http://livekit-api:7880): taking a dialer off it cuts the dialer from
	// LiveKit's API and nothing else, taking it off the main network cuts it
	// from the broker (and LiveKit's webhooks) and not from LiveKit's API.
	apiNetwork bool
}

// withRecorder says whether the topology runs the recorder.
func (o topoOptions) withRecorder() bool { return o.recorder || o.schedulers > 0 }

// service is one container of the topology.
type service struct {
	name       string
	aliases    []string
	apiAliases []string // on LiveKit's API network (nil: not on it)
	c          *testcontainers.DockerContainer
	port       string // the port the test reaches it on
	ready      string // HTTP path answering 200 once it serves ("": the broker and redis, which log when they listen)
}

// topology is the whole pipeline in containers, for one test.
type topology struct {
	t       *testing.T
	id      string
	opts    topoOptions
	net     *testcontainers.DockerNetwork
	apiNet  *testcontainers.DockerNetwork // LiveKit's API network (opts.apiNetwork), else nil
	subnet  netip.Prefix
	volume  string // the broker's data
	records string // the call records' volume, shared by ingest and the recorder ("": none)

	apiKey, whSecret, lkSecret string
	reportSecret               string // keys the agent's report tokens (dialers sign, ingest verifies)
	trunk                      string
	registry                   []byte

	mu   sync.Mutex
	svcs map[string]*service

	adm *kadm.Client // the test's group-describing client, made by admin()

	brokerAddr atomic.Pointer[string] // 127.0.0.1:<published port> of the broker
	t0         time.Time              // when the load started, for the fault log
	started    time.Duration          // how long the topology took to start

	// reportOutages are the spans a fault kept the agent's reports from
	// being recorded (the broker down); the checker excuses the calls in
	// progress during them that ended as without the agent.
	reportOutages []invariants.Span
}

// newTopology starts broker, redis, livekit-server, phonesim, ingest,
// dialers, notifiers and receiver on a new network, and removes every one
// of them (and the network and the broker's volume) when the test ends,
// whatever happened. With opts.schedulers, the recorder and the schedulers
// start with ingest.
func newTopology(t *testing.T, opts topoOptions) *topology {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	tp := &topology{t: t, id: suite.runID + "-" + randomHex(2), opts: opts, svcs: map[string]*service{},
		apiKey: "dsk_it_" + randomHex(16), whSecret: "whsec_" + base64.StdEncoding.EncodeToString(randomBytes(24)),
		lkSecret: "it-livekit-secret-" + randomHex(16), reportSecret: "it-agent-report-secret-" + randomHex(16)}

	tp.volume = "dsit-" + tp.id + "-broker-data"
	if opts.withRecorder() {
		tp.records = "dsit-" + tp.id + "-records"
	}
	nw, err := tcnetwork.New(ctx, tcnetwork.WithLabels(map[string]string{"dialstream.it": suite.runID}))
	if err != nil {
		t.Fatalf("create network: %v", err)
	}
	tp.net = nw
	t.Cleanup(tp.teardown) // containers, then the networks, then the volumes
	if opts.apiNetwork {
		if tp.apiNet, err = tcnetwork.New(ctx, tcnetwork.WithLabels(map[string]string{"dialstream.it": suite.runID})); err != nil {
			t.Fatalf("create LiveKit's API network: %v", err)
		}
	}
	ins, err := suite.docker.NetworkInspect(ctx, nw.ID, client.NetworkInspectOptions{})
	if err != nil || len(ins.Network.IPAM.Config) == 0 {
		t.Fatalf("inspect network %s: %v (%d IPAM configs)", nw.Name, err, len(ins.Network.IPAM.Config))
	}
	tp.subnet = ins.Network.IPAM.Config[0].Subnet

	// Kafka and Redis first: everything else connects to one of them.
	tp.startAll(ctx, tp.brokerSpec(), tp.redisSpec())
	tp.setBrokerAddr(ctx)
	tp.startAll(ctx, tp.livekitSpec(), tp.phonesimSpec())

	// The trunk, through the published port, as an operator would.
	tctx, tcancel := context.WithTimeout(ctx, 30*time.Second)
	tp.trunk, err = livekitdev.EnsureOutboundTrunk(tctx, tp.url("livekit"), lkAPIKey, tp.lkSecret, "dialstream-it",
		[]string{"+15550109999"})
	tcancel()
	if err != nil {
		t.Fatalf("create the outbound trunk: %v", err)
	}
	tp.registry = fmt.Appendf(nil, registryTemplate, registry.HashKey(tp.apiKey), tp.whSecret)

	specs := []spec{tp.ingestSpec(), tp.receiverSpec(), tp.agentSpec()}
	if opts.withRecorder() {
		specs = append(specs, tp.recorderSpec())
	}
	for i := 1; i <= opts.schedulers; i++ {
		specs = append(specs, tp.schedulerSpec(i))
	}
	for i := 1; i <= opts.dialers; i++ {
		specs = append(specs, tp.dialerSpec(i))
	}
	for i := 1; i <= opts.notifiers; i++ {
		specs = append(specs, tp.notifierSpec(i))
	}
	tp.startAll(ctx, specs...)
	tp.started = time.Since(start)
	t.Logf("topology %s up in %s: %s on network %s (%s)", tp.id, tp.started.Round(100*time.Millisecond),
		strings.Join(slices.Sorted(maps.Keys(tp.svcs)), ", "), nw.Name, tp.subnet)
	return tp
}

// spec is how to start one service.
type spec struct {
	name    string
	aliases []string
	image   string
	cmd     []string
	env     map[string]string
	port    string
	ready   string
	wait    wait.Strategy
	files   map[string][]byte // container path -> content
	mounts  testcontainers.ContainerMounts
	// apiAliases are its aliases on LiveKit's API network, when the
	// topology has one; nil: it does not join it.
	apiAliases []string
}

func (tp *topology) kafkaEnv(extra map[string]string) map[string]string {
	env := map[string]string{
		"KAFKA_BROKERS":          "broker:9092",
		"KAFKA_TOPIC_PARTITIONS": "6",
		"KAFKA_SESSION_TIMEOUT":  "6s",
		"KAFKA_PRODUCE_TIMEOUT":  "3s",
		"DIALSTREAM_REGISTRY":    registryPath,
		trunkEnv:                 tp.trunk,
		"LOG_FORMAT":             "json",
		"LOG_LEVEL":              "info",
	}
	maps.Copy(env, extra)
	return env
}

func (tp *topology) brokerSpec() spec {
	return spec{
		name: "broker", image: suite.images.dialstream, cmd: []string{"broker"}, port: brokerPort,
		env: map[string]string{
			"BROKER_LISTEN": "0.0.0.0:9092", "BROKER_ADVERTISE": "broker:9092",
			"BROKER_DATA_DIR": "/data", "BROKER_SYNC_WRITES": "true",
			// Lets the services use 6s sessions, so a killed member is noticed fast.
			"BROKER_MIN_SESSION_TIMEOUT": "1s",
			"KAFKA_TOPIC_PARTITIONS":     "6",
		},
		mounts: testcontainers.Mounts(testcontainers.VolumeMount(tp.volume, "/data")),
		wait:   wait.ForLog("embedded broker listening"),
	}
}

func (tp *topology) redisSpec() spec {
	return spec{
		name: "redis", image: suite.images.dialstream, cmd: []string{"redis"}, port: redisPort,
		env:  map[string]string{"REDIS_LISTEN": "0.0.0.0:6379"},
		wait: wait.ForLog("redis (miniredis) listening"),
	}
}

// livekitConfig is livekit-server v1.13.5's config file, the subset the
// suite sets (livekit-server parses it strictly: a misspelled key fails).
//
// WebRTC stays on the suite's network: the media port binds inside the
// container only (it is not published), candidates are limited to the
// network's subnet, the node IP is the container's own (use_external_ip off:
// no STUN lookup), and the STUN server handed to clients (phonesim) is a dead
// loopback address, so no client sends STUN anywhere. Left empty,
// livekit-server would hand out public STUN servers.
type livekitConfig struct {
	Port          int               `json:"port"`
	BindAddresses []string          `json:"bind_addresses"`
	RTC           livekitRTC        `json:"rtc"`
	Redis         map[string]string `json:"redis"`
	Keys          map[string]string `json:"keys"`
	Webhook       livekitWebhook    `json:"webhook"`
	Logging       map[string]string `json:"logging"`
}

type livekitRTC struct {
	UDPPort                 string              `json:"udp_port"`
	TCPPort                 int                 `json:"tcp_port"`
	UseExternalIP           bool                `json:"use_external_ip"`
	EnableLoopbackCandidate bool                `json:"enable_loopback_candidate"`
	IPs                     map[string][]string `json:"ips"`
	STUNServers             []string            `json:"stun_servers"`
}

type livekitWebhook struct {
	APIKey string   `json:"api_key"`
	URLs   []string `json:"urls"`
}

func (tp *topology) livekitSpec() spec {
	cfg, _ := json.MarshalIndent(livekitConfig{
		Port: 7880, BindAddresses: []string{"0.0.0.0"},
		RTC: livekitRTC{
			UDPPort: "7882", TCPPort: 0, UseExternalIP: false, EnableLoopbackCandidate: false,
			IPs:         map[string][]string{"includes": {tp.subnet.String()}},
			STUNServers: []string{"127.0.0.1:3478"},
		},
		Redis: map[string]string{"address": "redis:6379"},
		Keys:  map[string]string{lkAPIKey: tp.lkSecret},
		// "dialer" is an alias every dialer container carries: Docker's DNS
		// answers with the running ones, so LiveKit's one URL reaches a live
		// dialer through kills and scaling.
		Webhook: livekitWebhook{APIKey: lkAPIKey, URLs: []string{"http://dialer:8081/livekit/webhook"}},
		Logging: map[string]string{"level": "info", "pion_level": "error"},
	}, "", "  ")
	return spec{
		name: "livekit", image: suite.images.livekit, cmd: []string{"--config", livekitPath}, port: livekitPort,
		files: map[string][]byte{livekitPath: cfg}, ready: "/", apiAliases: []string{"livekit-api"},
	}
}

func (tp *topology) phonesimSpec() spec {
	return spec{
		name: "phonesim", image: suite.images.dialstream, cmd: []string{"phonesim"}, port: phonesimPort, ready: "/healthz",
		env: map[string]string{
			"PHONESIM_REDIS_ADDR": "redis:6379", "PHONESIM_HTTP_ADDR": "0.0.0.0:7890",
			"LIVEKIT_URL": "http://livekit:7880", "LIVEKIT_API_KEY": lkAPIKey, "LIVEKIT_API_SECRET": tp.lkSecret,
		},
	}
}

func (tp *topology) ingestSpec() spec {
	s := spec{
		name: "ingest", image: suite.images.dialstream, cmd: []string{"ingest"}, port: ingestPort, ready: "/readyz",
		// The call tests read no call state: a SQLite file on the
		// container's tmpfs is enough for ingest's read-your-writes.
		env: tp.kafkaEnv(map[string]string{"INGEST_HTTP_ADDR": "0.0.0.0:8080", "DATABASE_URL": "sqlite:///tmp/records.db",
			"DIALSTREAM_AGENT_REPORT_SECRET": tp.reportSecret}),
		files: map[string][]byte{registryPath: tp.registry},
	}
	if tp.records != "" {
		s.env["DATABASE_URL"] = recordsURL
		s.mounts = testcontainers.Mounts(testcontainers.VolumeMount(tp.records, "/records"))
	}
	return s
}

// recorderSpec is the recorder, writing the call records (campaigns
// included) that ingest's read routes answer from.
func (tp *topology) recorderSpec() spec {
	return spec{
		name: "recorder", image: suite.images.dialstream, cmd: []string{"recorder"}, port: recorderPort, ready: "/readyz",
		env: tp.kafkaEnv(map[string]string{
			"KAFKA_CLIENT_ID": "recorder", "RECORDER_HTTP_ADDR": "0.0.0.0:8084", "DATABASE_URL": recordsURL,
		}),
		mounts: testcontainers.Mounts(testcontainers.VolumeMount(tp.records, "/records")),
		files:  map[string][]byte{registryPath: tp.registry},
	}
}

func (tp *topology) schedulerSpec(i int) spec {
	name := fmt.Sprintf("scheduler-%d", i)
	return spec{
		name: name, image: suite.images.dialstream, cmd: []string{"scheduler"}, port: schedPort, ready: "/readyz",
		env: tp.kafkaEnv(map[string]string{
			"KAFKA_CLIENT_ID":     name,
			"SCHEDULER_HTTP_ADDR": "0.0.0.0:8086",
			// The registry is read once; a short wake only bounds how long
			// a partition's release loop sleeps between due contacts.
			"SCHEDULER_MAX_WAKE": "1s",
		}),
		files: map[string][]byte{registryPath: tp.registry},
	}
}

func (tp *topology) receiverSpec() spec {
	return spec{
		name: "receiver", image: suite.images.dialstream, cmd: []string{"receiver"}, port: receiverPort, ready: "/healthz",
		env: map[string]string{
			"RECEIVER_HTTP_ADDR": "0.0.0.0:8090", "DIALSTREAM_REGISTRY": registryPath, trunkEnv: tp.trunk,
		},
		files: map[string][]byte{registryPath: tp.registry},
	}
}

func (tp *topology) dialerSpec(i int) spec {
	name := fmt.Sprintf("dialer-%d", i)
	livekitURL := "http://livekit:7880"
	if tp.apiNet != nil {
		livekitURL = "http://livekit-api:7880"
	}
	return spec{
		name: name, aliases: []string{name, "dialer"}, image: suite.images.dialstream, cmd: []string{"dialer"},
		port: dialerPort, ready: "/readyz", apiAliases: []string{name},
		env: tp.kafkaEnv(map[string]string{
			// The container's name, so the broker's description of the
			// group says which dialer owns which partition.
			"KAFKA_CLIENT_ID":    name,
			"DIALER_HTTP_ADDR":   "0.0.0.0:8081",
			"LIVEKIT_URL":        livekitURL,
			"LIVEKIT_API_KEY":    lkAPIKey,
			"LIVEKIT_API_SECRET": tp.lkSecret,
			// Short timers so a call whose webhook was lost (its dialer was
			// killed, the broker was down) is resolved within the test.
			"DIALER_WATCHDOG_INTERVAL":   "1s",
			"DIALER_WATCHDOG_GRACE":      "5s",
			"DIALER_ROOM_CHECK_INTERVAL": "5s",
			// Longer than the longest dial (the no-answer number rings for
			// the 10 s ringing timeout, bounded at 12 s), so a graceful
			// scale-down lets every dial finish (docs/architecture.md,
			// "In-doubt recovery").
			"DIALER_DRAIN_TIMEOUT": "15s",
			// The phone network's calls per second, as a carrier sets it:
			// above the steady 8 calls/s even for one dialer alone, and
			// what keeps the claims due together after a LiveKit or
			// network outage from reaching phonesim all at once.
			"DIALER_TRUNK_CALLS_PER_SECOND": "10",
			// Every dispatch carries ingest's report channel, with a token
			// this secret signs.
			"DIALER_AGENT_REPORT_URL":        "http://ingest:8080",
			"DIALSTREAM_AGENT_REPORT_SECRET": tp.reportSecret,
		}),
		files: map[string][]byte{registryPath: tp.registry},
	}
}

// agentSpec is the reference agent: a LiveKit agent worker for the
// registry's agent name, which every dialer's dispatch names. It joins each
// call's room over WebRTC on the suite's network (as the phone simulator
// does) and reports to ingest, as the dispatch's report channel says. It
// reaches LiveKit through the main network's alias, so the LiveKit-side
// faults of LiveKit's API network (the dialers') leave it alone.
func (tp *topology) agentSpec() spec {
	return spec{
		name: "agent", image: suite.images.dialstream, cmd: []string{"agent"}, port: agentPort, ready: "/readyz",
		env: map[string]string{
			"LIVEKIT_URL": "http://livekit:7880", "LIVEKIT_API_KEY": lkAPIKey, "LIVEKIT_API_SECRET": tp.lkSecret,
			"AGENT_NAMES": "dialstream-it-agent", "AGENT_HTTP_ADDR": "0.0.0.0:8085",
			// Every call's room gets the agent from before the dial until
			// it closes (the busy and unanswered ones too): ~60 calls at
			// once under the suite's load, more while a backlog drains
			// after a fault. The default 50 would turn calls away.
			"AGENT_MAX_JOBS": "300",
			"LOG_FORMAT":     "json", "LOG_LEVEL": "info",
		},
	}
}

func (tp *topology) notifierSpec(i int) spec {
	name := fmt.Sprintf("notifier-%d", i)
	return spec{
		name: name, image: suite.images.dialstream, cmd: []string{"notifier"}, port: notifierPort, ready: "/readyz",
		env: tp.kafkaEnv(map[string]string{
			"KAFKA_CLIENT_ID":    name,
			"NOTIFIER_HTTP_ADDR": "0.0.0.0:8082",
			// 67 s of retries in all: longer than any fault of the suite, so
			// nothing should reach the DLQ.
			"NOTIFIER_RETRY_SCHEDULE":  "0s,2s,5s,10s,20s,30s",
			"NOTIFIER_TIMEOUT":         "2s",
			"NOTIFIER_CONNECT_TIMEOUT": "2s",
			// The receiver is on the suite's private network.
			"NOTIFIER_ALLOW_CIDRS": tp.subnet.String(),
		}),
		files: map[string][]byte{registryPath: tp.registry},
	}
}

// startAll starts services in parallel and fails the test if one does not
// come up.
func (tp *topology) startAll(ctx context.Context, specs ...spec) {
	tp.t.Helper()
	var g errgroup.Group
	for _, s := range specs {
		g.Go(func() error { return tp.start(ctx, s) })
	}
	if err := g.Wait(); err != nil {
		tp.t.Fatal(err)
	}
}

func (tp *topology) start(ctx context.Context, s spec) error {
	if len(s.aliases) == 0 {
		s.aliases = []string{s.name}
	}
	strategy := s.wait
	if strategy == nil {
		strategy = wait.ForHTTP(s.ready).WithPort(s.port).WithStartupTimeout(90 * time.Second).
			WithPollInterval(200 * time.Millisecond)
	}
	var files []testcontainers.ContainerFile
	for p, b := range s.files {
		files = append(files, testcontainers.ContainerFile{Reader: bytes.NewReader(b), ContainerFilePath: p, FileMode: 0o644})
	}
	port := mobynet.MustParsePort(s.port)
	networks := []string{tp.net.Name}
	aliases := map[string][]string{tp.net.Name: s.aliases}
	if tp.apiNet != nil && s.apiAliases != nil {
		networks = append(networks, tp.apiNet.Name)
		aliases[tp.apiNet.Name] = s.apiAliases
	}
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Name:           "dsit-" + tp.id + "-" + s.name,
			Image:          s.image,
			Cmd:            s.cmd,
			Env:            s.env,
			ExposedPorts:   []string{s.port},
			Networks:       networks,
			NetworkAliases: aliases,
			Files:          files,
			Mounts:         s.mounts,
			Tmpfs:          map[string]string{"/tmp": "rw"},
			Labels:         map[string]string{"dialstream.it": suite.runID},
			WaitingFor:     strategy,
			HostConfigModifier: func(hc *container.HostConfig) {
				// Published on loopback only; Docker picks the host port.
				hc.PortBindings = mobynet.PortMap{port: {{HostIP: netip.MustParseAddr("127.0.0.1")}}}
				// Docker's DNS answers the suite's aliases itself and forwards
				// any other name to these servers: the container's own
				// loopback, where nothing listens. So a lookup of an unknown
				// name fails fast instead of leaving the machine.
				hc.DNS = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
			},
		},
		Started: true,
	})
	if dc, ok := c.(*testcontainers.DockerContainer); ok && dc != nil {
		tp.mu.Lock()
		tp.svcs[s.name] = &service{name: s.name, aliases: s.aliases, apiAliases: s.apiAliases, c: dc, port: s.port, ready: s.ready}
		tp.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("start %s: %w", s.name, err)
	}
	return nil
}

func (tp *topology) svc(name string) *service {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	s := tp.svcs[name]
	if s == nil {
		tp.t.Fatalf("no service %s", name)
	}
	return s
}

// hostAddr is 127.0.0.1:<published port> of a service (it changes when the
// container restarts).
func (tp *topology) hostAddr(ctx context.Context, name string) (string, error) {
	s := tp.svc(name)
	p, err := s.c.MappedPort(ctx, s.port)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", p.Port()), nil
}

func (tp *topology) url(name string) string {
	tp.t.Helper()
	a, err := tp.hostAddr(tp.t.Context(), name)
	if err != nil {
		tp.t.Fatalf("published port of %s: %v", name, err)
	}
	return "http://" + a
}

func (tp *topology) setBrokerAddr(ctx context.Context) {
	a, err := tp.hostAddr(ctx, "broker")
	if err != nil {
		tp.t.Fatalf("published port of the broker: %v", err)
	}
	tp.brokerAddr.Store(&a)
}

// kafkaOpts reach the broker from the test process. The broker advertises
// its network alias (broker:9092), which the host cannot resolve, so every
// connection goes to its published port instead, whatever the name.
func (tp *topology) kafkaOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers("broker:9092"),
		kgo.Dialer(func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, *tp.brokerAddr.Load())
		}),
	}
}

// client is how the test asks for calls: through ingest's published port.
func (tp *topology) client() invariants.Client {
	return invariants.Client{
		IngestURL: tp.url("ingest"), APIKey: tp.apiKey, WorkspaceID: workspaceID, AgentID: plainAgentID,
		CallbackURL: callbackURL, HTTP: httpClient(),
	}
}

func httpClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy: nil, MaxIdleConnsPerHost: 32, IdleConnTimeout: 30 * time.Second,
	}}
}

// teardown saves the logs of a failed test, takes every container off the
// network one by one, removes them (in parallel), then the network and the
// broker's volume.
//
// The explicit, serial disconnect is there because Docker 20.10 can keep a
// stale endpoint when many containers of one network (a restarted one among
// them) are removed at once, and then refuses to remove the network
// ("has active endpoints", moby/moby#17217) until the daemon restarts.
func (tp *topology) teardown() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tp.mu.Lock()
	svcs := slices.Collect(maps.Values(tp.svcs))
	tp.mu.Unlock()
	if tp.t.Failed() || os.Getenv("DIALSTREAM_IT_LOGS") != "" {
		tp.saveLogs(ctx, svcs)
	}
	for _, s := range svcs {
		id := s.c.GetContainerID()
		if st, err := s.c.State(ctx); err == nil && st.Paused {
			// A paused container cannot be stopped; a test that failed
			// mid-fault may leave one.
			_, _ = suite.docker.ContainerUnpause(ctx, id, client.ContainerUnpauseOptions{})
		}
		for _, nw := range tp.networks() {
			_, _ = suite.docker.NetworkDisconnect(ctx, nw.ID, client.NetworkDisconnectOptions{Container: id, Force: true})
		}
	}
	var wg sync.WaitGroup
	for _, s := range svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := testcontainers.TerminateContainer(s.c, testcontainers.StopContext(ctx),
				testcontainers.StopTimeout(time.Second)); err != nil {
				tp.t.Errorf("remove container %s: %v", s.name, err)
			}
		}()
	}
	wg.Wait()
	for _, nw := range tp.networks() {
		tp.removeNetwork(ctx, nw)
	}
	for _, v := range []string{tp.volume, tp.records} {
		if v == "" {
			continue
		}
		if _, err := suite.docker.VolumeRemove(ctx, v, client.VolumeRemoveOptions{Force: true}); err != nil &&
			!strings.Contains(err.Error(), "no such volume") {
			tp.t.Errorf("remove volume %s: %v", v, err)
		}
	}
}

// removeNetwork retries for a while: Docker releases endpoints shortly
// after the containers are gone. A network that has no container left but
// still refuses is the daemon's stale endpoint (see teardown): it is
// reported, not failed on, since only a daemon restart clears it.
// networks are the topology's networks: the main one, and LiveKit's API
// network if it has one.
func (tp *topology) networks() []*testcontainers.DockerNetwork {
	if tp.apiNet != nil {
		return []*testcontainers.DockerNetwork{tp.net, tp.apiNet}
	}
	return []*testcontainers.DockerNetwork{tp.net}
}

func (tp *topology) removeNetwork(ctx context.Context, nw *testcontainers.DockerNetwork) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		err := nw.Remove(ctx)
		if err == nil || strings.Contains(err.Error(), "not found") {
			return
		}
		select {
		case <-ctx.Done():
			ins, ierr := suite.docker.NetworkInspect(context.Background(), nw.ID, client.NetworkInspectOptions{})
			if ierr == nil && len(ins.Network.Containers) == 0 {
				tp.t.Logf("WARNING: Docker keeps a stale endpoint on network %s and will not remove it (%v); "+
					"no container of the suite is attached; a daemon restart clears it", nw.Name, err)
				return
			}
			tp.t.Errorf("remove network %s: %v", nw.Name, err)
			return
		case <-tick.C:
		}
	}
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// saveLogs writes every container's log to DIALSTREAM_IT_LOGS (else a
// directory under the system temp dir) and quotes the errors in the test log.
func (tp *topology) saveLogs(ctx context.Context, svcs []*service) {
	dir := os.Getenv("DIALSTREAM_IT_LOGS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "dialstream-it-logs")
	}
	dir = filepath.Join(dir, suite.runID, unsafeName.ReplaceAllString(tp.t.Name(), "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tp.t.Logf("save logs: %v", err)
		return
	}
	for _, s := range svcs {
		rc, err := s.c.Logs(ctx)
		if err != nil {
			tp.t.Logf("logs of %s: %v", s.name, err)
			continue
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		_ = os.WriteFile(filepath.Join(dir, s.name+".log"), b, 0o644)
		if tp.t.Failed() {
			var errs []string
			sc := bufio.NewScanner(bytes.NewReader(b))
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				if l := sc.Text(); strings.Contains(l, `"level":"ERROR"`) {
					errs = append(errs, l)
				}
			}
			if n := len(errs); n > 0 {
				tp.t.Logf("%s logged %d errors; the last: %s", s.name, n, errs[n-1])
			}
		}
	}
	tp.t.Logf("container logs: %s", dir)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

var errNotReady = errors.New("not ready")
