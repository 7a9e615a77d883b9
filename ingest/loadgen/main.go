// Command loadgen measures POST /v1/api/call over loopback HTTP against the
// embedded Kafka broker, next to a bare Gin handler that does nothing but the
// same acks=all produce, in one run: the ratio is what validation, auth,
// idempotency and the CloudEvents/schema work cost per request.
//
//	go run ./ingest/loadgen -n 20000 -c 32
//
// Everything runs in this process on 127.0.0.1 (broker, ingest via
// ingest.Run, the bare handler, the load), so the figures are for one machine
// sharing its cores between client, server and broker; they compare the two
// handlers, they are not a capacity plan. The recorder, which ingest's
// read-your-writes relies on (it writes the accepted calls into the call
// records), runs as a deployment runs it: in a process of its own (this
// program again, -recorder), on the same cores, so its work slows the load
// but its CPU is not in cpu/req.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/ingest"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/recorder"
)

// Options bound a run.
type Options struct {
	Requests    int           // per scenario
	Concurrency int           // concurrent clients
	Warmup      int           // unmeasured requests per scenario
	Timeout     time.Duration // per scenario
	Partitions  int
	Rounds      int // scenarios are run in turn this many times
	// DatabaseURL is the call records database ingest writes its accepted
	// calls into (read-your-writes); "" is a SQLite file in a temporary
	// directory.
	DatabaseURL string
	// Recorder runs the recorder on the broker and database in a child
	// process (this executable again, with recorderChildEnv set), as a
	// deployment runs it; without it ingest writes the accepted calls
	// itself (its fallback, ownwrites.go).
	Recorder bool
	// Overload, when > 0, adds a last scenario: that many clients at once
	// against an ingest limited to MaxInFlight requests (0: ingest's
	// default), counting 202s and 503s (each with Retry-After) apart.
	Overload    int
	MaxInFlight int
	// CPUProfile, when not "", is a file that gets the process's CPU
	// profile over the measured requests of ProfileScenario's first round
	// (the broker, both servers and the load generator share the process:
	// focus the profile on ingest's frames to read the handler's share).
	CPUProfile      string
	ProfileScenario string // "ingest" (default), "bare" or "idempotency"
	Out             io.Writer
}

// Result is one scenario's figures.
type Result struct {
	Name     string
	Requests int
	Errors   int
	Elapsed  time.Duration
	P50, P99 time.Duration
	Max      time.Duration
	// CPU is the CPU time the whole process (broker, servers, load) spent
	// over the measured requests. On a shared machine req/s moves with
	// what else runs; CPU per request much less, so the ratio of two
	// scenarios' CPU per request is the steadier comparison.
	CPU time.Duration
	// Shed counts the 503s of the overload scenario.
	Shed int
}

// CPUPerRequest is CPU divided by the requests.
func (r Result) CPUPerRequest() time.Duration { return r.CPU / time.Duration(max(1, r.Requests)) }

// RPS is the completed requests per second.
func (r Result) RPS() float64 { return float64(r.Requests) / r.Elapsed.Seconds() }

func main() {
	if os.Getenv(recorderChildEnv) != "" {
		if err := recorderChild(); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen recorder:", err)
			os.Exit(1)
		}
		return
	}
	var o Options
	flag.IntVar(&o.Requests, "n", 20000, "measured requests per scenario")
	flag.IntVar(&o.Concurrency, "c", 32, "concurrent clients")
	flag.IntVar(&o.Warmup, "warmup", 1000, "unmeasured requests per scenario")
	flag.DurationVar(&o.Timeout, "timeout", 60*time.Second, "cap per scenario")
	flag.IntVar(&o.Partitions, "partitions", 6, "partitions of the topics")
	flag.IntVar(&o.Rounds, "rounds", 2, "rounds of all scenarios")
	flag.StringVar(&o.DatabaseURL, "database-url", "", "call records database (postgres://... or sqlite://path); default a temporary SQLite file")
	flag.BoolVar(&o.Recorder, "recorder", true, "run the recorder in a process of its own (its CPU not counted), as deployed")
	flag.IntVar(&o.Overload, "overload", 0, "if > 0, a last scenario with this many clients at once (202s and 503s counted apart)")
	flag.IntVar(&o.MaxInFlight, "max-in-flight", 0, "ingest's INGEST_MAX_IN_FLIGHT (0: its default)")
	flag.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the first round of -profile-scenario to this file")
	flag.StringVar(&o.ProfileScenario, "profile-scenario", "ingest", "the scenario -cpuprofile covers: ingest, bare or idempotency")
	flag.Parse()
	o.Out = os.Stdout
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := Run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

const (
	loadKey   = "dsk_load_local"
	loadAgent = "load_agent"
	// recorderChildEnv, set to "broker address|database URL|partitions",
	// makes this program the recorder child.
	recorderChildEnv = "LOADGEN_RECORDER_CHILD"
	// recorderProfileEnv, when set to a file, gets the recorder child's
	// CPU profile over its whole life (every scenario).
	recorderProfileEnv = "LOADGEN_RECORDER_CPUPROFILE"
	// bareTopic is where the bare handler produces: not a topic the
	// recorder reads, so the floor does not pay for it.
	bareTopic = "loadgen.bare"
)

// loadRegistry is the one workspace and agent of the load.
func loadRegistry() (*registry.Registry, error) {
	return registry.Parse([]byte(`
workspaces:
  - id: ws_load
    api_key_sha256: ["`+registry.HashKey(loadKey)+`"]
    limits: {requests_per_second: 1000000000}
    compliance: {home_country: US, calling_hours: {start: "00:00", end: "24:00"}, max_attempts_per_day: unlimited, max_attempts_per_week: unlimited}
agents:
  - {id: `+loadAgent+`, workspace: ws_load, livekit_agent_name: load, sip_trunk_id: ST_load}
`), func(string) string { return "" })
}

// startRecorder runs this executable as the recorder child and returns a
// stop that ends it (closing its stdin) and waits for it.
func startRecorder(broker, dbURL string, partitions int) (pid int, stop func() error, err error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), recorderChildEnv+"="+broker+"|"+dbURL+"|"+strconv.Itoa(partitions))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return 0, nil, err
	}
	if err := cmd.Start(); err != nil {
		return 0, nil, fmt.Errorf("start the recorder: %w", err)
	}
	return cmd.Process.Pid, func() error {
		in.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			return fmt.Errorf("the recorder did not stop within 30s of its stdin closing; killed: %w", <-done)
		}
	}, nil
}

// recorderChild is the child's main: recorder.Run until its stdin closes
// (the parent ended) or a signal.
func recorderChild() error {
	parts := strings.Split(os.Getenv(recorderChildEnv), "|")
	if len(parts) != 3 {
		return fmt.Errorf("%s: want broker|database url|partitions, got %q", recorderChildEnv, os.Getenv(recorderChildEnv))
	}
	n, err := strconv.Atoi(parts[2])
	if err != nil {
		return err
	}
	reg, err := loadRegistry()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel() }()
	if path := os.Getenv(recorderProfileEnv); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	err = recorder.Run(ctx, recorder.Config{Listener: ln, DatabaseURL: parts[1], Registry: reg,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Kafka:  kafkax.Config{Brokers: []string{parts[0]}, Partitions: n, CreateTopics: true}.WithDefaults("loadgen-recorder")})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Body is what every scenario sends: a realistic call request, to a valid
// number (the dev test range +1555010xxxx is cheaper to check).
const Body = `{"to":"+12025550123","call_agent_id":"load_agent","callback_url":"https://example.com/webhooks/dialstream",` +
	`"dynamic_variables":{"firstName":"Ada","lastName":"Lovelace","Zipcode":"94105","address":"1 Main St","email":"ada@example.com"},` +
	`"metadata":{"crm_id":"abc-123","campaign":"spring"}}`

// Run starts the broker and both servers, runs the scenarios and prints a
// table to o.Out.
func Run(ctx context.Context, o Options) ([]Result, error) {
	b, err := kafkax.StartBroker(kafkax.BrokerConfig{Listen: "127.0.0.1:0", Partitions: o.Partitions})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	kcfg := kafkax.Config{Brokers: []string{b.Addr()}, Partitions: o.Partitions, CreateTopics: true}.WithDefaults("loadgen")

	reg, err := loadRegistry()
	if err != nil {
		return nil, err
	}

	if o.DatabaseURL == "" {
		dir, err := os.MkdirTemp("", "dialstream-loadgen-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		o.DatabaseURL = "sqlite://" + filepath.Join(dir, "records.db")
	}
	recorderPID := 0
	if o.Recorder {
		pid, stop, err := startRecorder(b.Addr(), o.DatabaseURL, o.Partitions)
		if err != nil {
			return nil, err
		}
		recorderPID = pid
		defer func() {
			if err := stop(); err != nil {
				fmt.Fprintln(o.Out, "loadgen: recorder:", err)
			}
		}()
	}

	// ingest, exactly as the binary runs it (its own client, kprom, topics).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	metrics := prometheus.NewRegistry()
	ictx, stopIngest := context.WithCancel(ctx)
	ingestDone := make(chan error, 1)
	go func() {
		ingestDone <- ingest.Run(ictx, ingest.Config{Listener: ln, Registry: reg, Kafka: kcfg, DatabaseURL: o.DatabaseURL, Metrics: metrics,
			MaxInFlight: o.MaxInFlight, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	}()
	defer func() { stopIngest(); <-ingestDone }()
	ingestURL := "http://" + ln.Addr().String() + "/v1/api/call"

	// The bare handler: Gin, read the body, the same acks=all idempotent
	// produce (to bareTopic, same partitions, which the recorder does not
	// read), answer 202 with the record's position. No auth, no checks.
	opts, err := kcfg.ClientOpts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	if err := kafkax.EnsureTopics(ctx, cl, 1, kafkax.TopicSpec{Name: bareTopic, Partitions: int32(o.Partitions)}); err != nil {
		return nil, err
	}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.POST("/bare", func(c *gin.Context) {
		body, err := io.ReadAll(c.Request.Body)
		if err != nil {
			c.Status(http.StatusBadRequest)
			return
		}
		var id [12]byte
		_, _ = rand.Read(id[:])
		pctx, cancel := context.WithTimeout(c.Request.Context(), kcfg.ProduceTimeout)
		defer cancel()
		r, err := cl.ProduceSync(pctx, &kgo.Record{Topic: bareTopic, Key: []byte(hex.EncodeToString(id[:])), Value: body}).First()
		if err != nil {
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "error"})
			return
		}
		c.JSON(http.StatusAccepted, gin.H{"status": "success", "jobId": fmt.Sprintf("%d-%d", r.Partition, r.Offset)})
	})
	bln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	bsrv := &http.Server{Handler: e, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = bsrv.Serve(bln) }()
	defer bsrv.Close()
	bareURL := "http://" + bln.Addr().String() + "/bare"

	if err := waitReady(ctx, "http://"+ln.Addr().String()+"/readyz"); err != nil {
		return nil, err
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConns: o.Concurrency * 2, MaxIdleConnsPerHost: o.Concurrency * 2}, Timeout: 30 * time.Second}
	var seq atomic.Int64
	scenarios := []scenario{
		{"bare gin + produce", "bare", func() *http.Request { return newReq(bareURL, "") }},
		{"ingest POST /v1/api/call", "ingest", func() *http.Request { return newReq(ingestURL, "") }},
		{"ingest + Idempotency-Key", "idempotency", func() *http.Request {
			return newReq(ingestURL, "k-"+strconv.FormatInt(seq.Add(1), 10))
		}},
	}
	if o.CPUProfile != "" && !slices.ContainsFunc(scenarios, func(s scenario) bool { return s.short == o.ProfileScenario }) {
		return nil, fmt.Errorf("-profile-scenario: want ingest, bare or idempotency, got %q", o.ProfileScenario)
	}
	fmt.Fprintf(o.Out, "loadgen: %d requests per scenario after %d warm-up, %d concurrent clients, %d partitions, GOMAXPROCS=%d, %s/%s\n",
		o.Requests, o.Warmup, o.Concurrency, o.Partitions, runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(o.Out, "%-28s %9s %10s %10s %10s %7s %9s\n", "scenario", "req/s", "p50", "p99", "max", "errors", "cpu/req")
	var results []Result
	for round := 0; round < o.Rounds; round++ {
		for _, s := range scenarios {
			if _, err := load(ctx, client, s.req, o.Warmup, o.Concurrency, o.Timeout); err != nil {
				return results, fmt.Errorf("%s warm-up: %w", s.name, err)
			}
			profiling := o.CPUProfile != "" && round == 0 && s.short == o.ProfileScenario
			if profiling {
				if err := startProfile(o.CPUProfile); err != nil {
					return results, err
				}
			}
			res, err := load(ctx, client, s.req, o.Requests, o.Concurrency, o.Timeout)
			if profiling {
				pprof.StopCPUProfile()
			}
			res.Name = s.name
			if err != nil {
				return results, fmt.Errorf("%s: %w", s.name, err)
			}
			results = append(results, res)
			fmt.Fprintf(o.Out, "%-28s %9.0f %10s %10s %10s %7d %9s\n", res.Name, res.RPS(),
				res.P50.Round(time.Microsecond), res.P99.Round(time.Microsecond), res.Max.Round(time.Microsecond), res.Errors,
				res.CPUPerRequest().Round(time.Microsecond))
		}
	}
	if o.Overload > 0 {
		oc := &http.Client{Transport: &http.Transport{MaxIdleConns: o.Overload, MaxIdleConnsPerHost: o.Overload}, Timeout: 30 * time.Second}
		res, err := loadShed(ctx, oc, func() *http.Request { return newReq(ingestURL, "") }, o.Requests, o.Overload, o.Timeout)
		res.Name = fmt.Sprintf("ingest, %d clients at once", o.Overload)
		if err != nil {
			return results, fmt.Errorf("%s: %w", res.Name, err)
		}
		results = append(results, res)
		fmt.Fprintf(o.Out, "%-28s %9.0f %10s %10s %10s %7d  (answers/s; %d accepted, %d refused 503 with Retry-After)\n", res.Name, res.RPS(),
			res.P50.Round(time.Microsecond), res.P99.Round(time.Microsecond), res.Max.Round(time.Microsecond), res.Errors,
			res.Requests-res.Shed, res.Shed)
	}
	if err := reportSettled(ctx, metrics, recorderPID, o.Out); err != nil {
		return results, err
	}
	return results, nil
}

// reportSettled waits (30 s at most) until every call ingest accepted is
// in the call records, settled by the recorder or by ingest's own fallback
// write, and prints the split from ingest's metrics (its registry, reg),
// and the CPU the recorder's process (recorderPID; 0: none) used per call
// over the run.
func reportSettled(ctx context.Context, reg *prometheus.Registry, recorderPID int, out io.Writer) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, err := counters(reg)
		if err != nil {
			return err
		}
		accepted := m["dialstream_ingest_calls_accepted_total"]
		byRecorder := m[`dialstream_ingest_own_requests_settled_total{by="recorder"}`]
		byIngest := m[`dialstream_ingest_own_requests_settled_total{by="ingest"}`]
		failed := m[`dialstream_ingest_own_requests_settled_total{by="failed"}`]
		if byRecorder+byIngest+failed >= accepted || time.Now().After(deadline) {
			fmt.Fprintf(out, "read-your-writes: %.0f calls accepted; in the call records by the recorder %.0f, by ingest's fallback write %.0f, failed %.0f, pending %.0f\n",
				accepted, byRecorder, byIngest, failed, accepted-byRecorder-byIngest-failed)
			if cpu := childCPU(recorderPID); recorderPID != 0 && cpu > 0 && accepted > 0 {
				fmt.Fprintf(out, "recorder process (not in cpu/req): %s CPU over the run, %s a call accepted\n",
					cpu.Round(time.Millisecond), (cpu / time.Duration(accepted)).Round(time.Microsecond))
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// counters are reg's counters: "name" or "name{label="value"}" (one label,
// as ingest's counters that reportSettled reads have) -> value.
func counters(reg *prometheus.Registry) (map[string]float64, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			if ls := m.GetLabel(); len(ls) == 1 {
				key += "{" + ls[0].GetName() + `="` + ls[0].GetValue() + `"}`
			}
			out[key] = m.GetCounter().GetValue()
		}
	}
	return out, nil
}

// loadShed is load for the overload scenario: a 503 with Retry-After is an
// answer (Shed), any other status but 202, or no answer, an error. A client
// refused waits the Retry-After before its next request, as a well-behaved
// client does; without that, refused clients spin and the run measures
// their loop, not the server.
func loadShed(ctx context.Context, client *http.Client, mk func() *http.Request, n, c int, timeout time.Duration) (Result, error) {
	var shed atomic.Int64
	res, err := loadWith(ctx, client, mk, n, c, timeout, func(resp *http.Response) error {
		switch {
		case resp.StatusCode == http.StatusAccepted:
			return nil
		case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
			shed.Add(1)
			secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			t := time.NewTimer(time.Duration(max(secs, 1)) * time.Second)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			return nil
		}
		return fmt.Errorf("status %d", resp.StatusCode)
	})
	res.Shed = int(shed.Load())
	return res, err
}

// scenario is one kind of request the load sends; short names it for
// -profile-scenario.
type scenario struct {
	name, short string
	req         func() *http.Request
}

// startProfile starts the CPU profile into path; pprof.StopCPUProfile
// flushes it, and the file is closed with the process.
func startProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("cpuprofile: %w", err)
	}
	return nil
}

func newReq(url, idemKey string) *http.Request {
	r, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(Body))
	r.Header.Set("Authorization", "Bearer "+loadKey)
	r.Header.Set("x-workspace-id", "ws_load")
	r.Header.Set("Content-Type", "application/json")
	if idemKey != "" {
		r.Header.Set("Idempotency-Key", idemKey)
	}
	return r
}

// load sends n requests from c workers and measures each one.
func load(ctx context.Context, client *http.Client, mk func() *http.Request, n, c int, timeout time.Duration) (Result, error) {
	return loadWith(ctx, client, mk, n, c, timeout, func(resp *http.Response) error {
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// loadWith is load with check judging each answer.
func loadWith(ctx context.Context, client *http.Client, mk func() *http.Request, n, c int, timeout time.Duration, check func(*http.Response) error) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	lat := make([]time.Duration, n)
	var next, errs atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	cpu0 := processCPU()
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				r := mk().WithContext(ctx)
				t0 := time.Now()
				resp, err := client.Do(r)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				lat[i] = time.Since(t0)
				if err == nil {
					err = check(resp)
				}
				if err != nil {
					errs.Add(1)
					once.Do(func() { firstErr = err })
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	done := min(int(next.Load()), n)
	if done < n {
		return Result{}, fmt.Errorf("only %d of %d requests in %s: %w", done, n, timeout, ctx.Err())
	}
	if e := errs.Load(); e > 0 {
		return Result{}, fmt.Errorf("%d failed requests, first: %w", e, firstErr)
	}
	slices.Sort(lat)
	return Result{Requests: n, Elapsed: elapsed, P50: pct(lat, 0.50), P99: pct(lat, 0.99), Max: lat[n-1], CPU: cpu}, nil
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func waitReady(ctx context.Context, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return errors.New("ingest not ready after 30s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
