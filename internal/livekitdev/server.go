// Package livekitdev runs a real livekit-server on loopback for `dialstream dev`
// and for tests: a child process with a generated config, backed by an
// in-process miniredis unless a Redis address is given.
//
// Everything it opens is bound to 127.0.0.1 (HTTP, the WebRTC UDP mux, ICE/TCP
// only when asked for), because dev-mode livekit-server otherwise opens media
// ports on every interface.
package livekitdev

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
)

const (
	pollInterval = 50 * time.Millisecond
	// Close sends SIGTERM twice: livekit-server's first one drains and waits
	// for participants to leave (forever, in a dev room an agent never
	// leaves); the second forces the stop. SIGKILL is the last resort.
	drainGrace = 2 * time.Second
	forceGrace = 3 * time.Second
)

// Server is a running livekit-server child process.
type Server struct {
	cfg       Config
	url       string
	redisAddr string
	dir       string

	cmd  *exec.Cmd
	tail *tailBuffer
	done chan struct{} // closed when the process has exited
	err  error         // exit status, valid after done

	redis *devRedis // nil when Config.RedisAddr was given

	closeOnce sync.Once
	closeErr  error
}

// Start launches livekit-server and returns once its HTTP port reports
// healthy. ctx bounds start-up only: the server runs until Close, so a caller
// that wants it tied to a context calls Close when that context ends.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("livekitdev: invalid config: %w", err)
	}
	cfg = cfg.withDefaults()
	if cfg.Binary == "" {
		bin, err := FindBinary()
		if err != nil {
			return nil, err
		}
		cfg.Binary = bin
	}

	var redis *devRedis
	redisAddr := cfg.RedisAddr
	if redisAddr == "" {
		r, err := startDevRedis()
		if err != nil {
			return nil, err
		}
		redis, redisAddr = r, r.addr()
	}

	// A port picked here is free when picked but may be taken before
	// livekit-server binds it (another test package starting its own server,
	// say). livekit-server then exits at once, and a fresh pick is retried.
	autoPorts := cfg.Port == 0 || cfg.RTCUDPPort == 0
	for attempt := 1; ; attempt++ {
		s, err := startOnce(ctx, cfg, redisAddr)
		if err == nil {
			s.redis = redis
			return s, nil
		}
		if !autoPorts || attempt == 3 || !errors.Is(err, errExited) || ctx.Err() != nil {
			if redis != nil {
				redis.close()
			}
			return nil, err
		}
	}
}

// errExited marks a start-up failure where livekit-server exited by itself.
var errExited = errors.New("livekit-server exited during start-up")

func startOnce(ctx context.Context, cfg Config, redisAddr string) (*Server, error) {
	var err error
	if cfg.Port == 0 {
		if cfg.Port, err = freeTCPPort(); err != nil {
			return nil, fmt.Errorf("livekitdev: pick http port: %w", err)
		}
	}
	if cfg.RTCUDPPort == 0 {
		if cfg.RTCUDPPort, err = freeUDPPort(); err != nil {
			return nil, fmt.Errorf("livekitdev: pick rtc udp port: %w", err)
		}
	}
	s := &Server{
		cfg:       cfg,
		url:       "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Port)),
		redisAddr: redisAddr,
		tail:      &tailBuffer{max: 8 << 10},
		done:      make(chan struct{}),
	}
	if err := s.launch(); err != nil {
		s.cleanup()
		return nil, err
	}
	if err := s.waitReady(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) launch() error {
	dir, err := os.MkdirTemp("", "livekitdev-")
	if err != nil {
		return fmt.Errorf("livekitdev: temp dir: %w", err)
	}
	s.dir = dir
	body, err := renderConfig(s.cfg, s.redisAddr)
	if err != nil {
		return fmt.Errorf("livekitdev: render config: %w", err)
	}
	confPath := filepath.Join(dir, "livekit.yaml")
	// 0600: the file holds the API secret.
	if err := os.WriteFile(confPath, body, 0o600); err != nil {
		return fmt.Errorf("livekitdev: write config: %w", err)
	}

	cmd := exec.Command(s.cfg.Binary, "--config", confPath)
	cmd.Dir = dir
	cmd.Env = childEnv(os.Environ())
	var out io.Writer = s.tail
	if s.cfg.LogWriter != nil {
		out = io.MultiWriter(s.cfg.LogWriter, s.tail)
	}
	cmd.Stdout = out
	cmd.Stderr = out
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("livekitdev: start %s: %w", s.cfg.Binary, err)
	}
	s.cmd = cmd
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	return nil
}

// childEnv drops variables livekit-server reads as config overrides
// (LIVEKIT_* maps onto every config key, plus a few legacy names), so a
// developer's shell pointed at a cloud project cannot leak into dev mode.
func childEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "LIVEKIT_"),
			name == "REDIS_HOST", name == "REDIS_PASSWORD",
			name == "NODE_IP", name == "UDP_PORT":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// waitReady polls GET / until livekit answers 200 ("OK" once its node stats
// are fresh), the process dies, or the deadline passes.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReadyTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/", nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("livekitdev: %w (%v); last output:\n%s", errExited, s.err, s.tail.String())
		case <-ctx.Done():
			return fmt.Errorf("livekitdev: livekit-server not ready at %s: %w; last output:\n%s", s.url, ctx.Err(), s.tail.String())
		case <-tick.C:
		}
	}
}

// URL is the server's HTTP base URL, e.g. http://127.0.0.1:7880; the SDK's
// clients and the WebSocket signalling both take it as is.
func (s *Server) URL() string { return s.url }

// RedisAddr is the Redis the server uses (the in-process miniredis unless
// Config.RedisAddr was set); a SIP service joins the psrpc bus there.
func (s *Server) RedisAddr() string { return s.redisAddr }

// APIKey and APISecret are the credentials the server accepts.
func (s *Server) APIKey() string    { return s.cfg.APIKey }
func (s *Server) APISecret() string { return s.cfg.APISecret }

// Done is closed when the livekit-server process exits, for whatever reason.
func (s *Server) Done() <-chan struct{} { return s.done }

// Close stops livekit-server (SIGTERM, SIGTERM again to skip the participant
// drain, then SIGKILL), waits for it, stops the in-process Redis and removes
// the config directory. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.stopProcess()
		s.cleanup()
	})
	return s.closeErr
}

func (s *Server) stopProcess() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	p := s.cmd.Process
	steps := []struct {
		sig   os.Signal
		grace time.Duration
	}{
		{syscall.SIGTERM, drainGrace},
		{syscall.SIGTERM, forceGrace},
		{os.Kill, 0},
	}
	for _, st := range steps {
		if err := p.Signal(st.sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("livekitdev: signal livekit-server: %w", err)
		}
		if st.grace == 0 {
			<-s.done
			break
		}
		t := time.NewTimer(st.grace)
		select {
		case <-s.done:
			t.Stop()
			return nil
		case <-t.C:
		}
	}
	return nil
}

func (s *Server) cleanup() {
	if s.redis != nil {
		s.redis.close()
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// devRedis is an in-process miniredis with a running clock.
type devRedis struct {
	mr   *miniredis.Miniredis
	stop chan struct{}
	wg   sync.WaitGroup
}

// clockTick is how often miniredis's clock is advanced. miniredis never
// expires a key by itself; livekit's room locks and psrpc's claim keys rely
// on TTLs, so without this ticker they would live forever.
const clockTick = 100 * time.Millisecond

func startDevRedis() (*devRedis, error) {
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("livekitdev: start miniredis: %w", err)
	}
	r := &devRedis{mr: mr, stop: make(chan struct{})}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(clockTick)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-r.stop:
				return
			case now := <-t.C:
				// Advance by the real elapsed time, so a late tick does not
				// slow the clock down.
				mr.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	return r, nil
}

func (r *devRedis) addr() string { return r.mr.Addr() }

func (r *devRedis) close() {
	close(r.stop)
	r.wg.Wait()
	r.mr.Close()
}

// freeTCPPort and freeUDPPort ask the kernel for an unused loopback port.
// The port is released before livekit-server binds it; Start retries when
// another process wins that race.
func freeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func freeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// tailBuffer keeps the last max bytes written to it, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
