package containers

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	mobynet "github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"
)

// The faults, each done to a container through the Docker API, each logged
// with its time since the load started.

func (tp *topology) logf(format string, args ...any) {
	tp.t.Helper()
	tp.t.Logf("%6.1fs  "+format, append([]any{time.Since(tp.t0).Seconds()}, args...)...)
}

// at waits until d after the load started (the fault schedule), or fails
// the test if ctx ends first.
func (tp *topology) at(ctx context.Context, d time.Duration) {
	tp.t.Helper()
	tp.wait(ctx, time.Until(tp.t0.Add(d)), "fault schedule")
}

// wait waits d, or fails the test (naming what waited) if ctx ends first.
func (tp *topology) wait(ctx context.Context, d time.Duration, what string) {
	tp.t.Helper()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		tp.t.Fatalf("%s: %v", what, ctx.Err())
	case <-t.C:
	}
}

func (tp *topology) must(what string, err error) {
	tp.t.Helper()
	if err != nil {
		tp.t.Fatalf("%s: %v", what, err)
	}
}

// kill sends SIGKILL: no shutdown code runs, as in a crash or an OOM kill.
func (tp *topology) kill(ctx context.Context, name string) {
	tp.t.Helper()
	_, err := suite.docker.ContainerKill(ctx, tp.svc(name).c.GetContainerID(), client.ContainerKillOptions{Signal: "KILL"})
	tp.must("SIGKILL "+name, err)
	tp.logf("SIGKILL %s", name)
}

// stop sends SIGTERM and waits up to grace before SIGKILL: a graceful stop
// (a deploy, a scale-down).
func (tp *topology) stop(ctx context.Context, name string, grace time.Duration) {
	tp.t.Helper()
	secs := int(grace.Seconds())
	start := time.Now()
	_, err := suite.docker.ContainerStop(ctx, tp.svc(name).c.GetContainerID(), client.ContainerStopOptions{Timeout: &secs})
	tp.must("stop "+name, err)
	tp.logf("stopped %s (SIGTERM; exited after %s)", name, time.Since(start).Round(100*time.Millisecond))
}

// restart starts a stopped container again, with its file system (and the
// broker's volume) as it was, and waits until it serves.
func (tp *topology) restart(ctx context.Context, name string) {
	tp.t.Helper()
	start := time.Now()
	_, err := suite.docker.ContainerStart(ctx, tp.svc(name).c.GetContainerID(), client.ContainerStartOptions{})
	tp.must("start "+name, err)
	tp.waitReady(ctx, name, 90*time.Second)
	tp.logf("restarted %s (ready after %s)", name, time.Since(start).Round(100*time.Millisecond))
}

func (tp *topology) pause(ctx context.Context, name string) {
	tp.t.Helper()
	_, err := suite.docker.ContainerPause(ctx, tp.svc(name).c.GetContainerID(), client.ContainerPauseOptions{})
	tp.must("pause "+name, err)
	tp.logf("paused %s (docker pause: the process is frozen, its sockets still accept)", name)
}

func (tp *topology) unpause(ctx context.Context, name string) {
	tp.t.Helper()
	_, err := suite.docker.ContainerUnpause(ctx, tp.svc(name).c.GetContainerID(), client.ContainerUnpauseOptions{})
	tp.must("unpause "+name, err)
	tp.logf("unpaused %s", name)
}

// disconnect takes a container off the network: it reaches nothing (not
// Kafka, not the callback) and nothing reaches it, while it keeps running.
func (tp *topology) disconnect(ctx context.Context, name string) {
	tp.t.Helper()
	tp.attach(ctx, name, tp.net, nil, "the network")
}

func (tp *topology) connect(ctx context.Context, name string) {
	tp.t.Helper()
	tp.attach(ctx, name, tp.net, tp.svc(name).aliases, "the network")
}

// attach connects a container to nw under aliases, or disconnects it from
// nw when aliases is nil. Taking a dialer off LiveKit's API network
// (opts.apiNetwork) cuts it from LiveKit's API only: it still reaches Kafka,
// and LiveKit's webhooks still reach it.
func (tp *topology) attach(ctx context.Context, name string, nw *testcontainers.DockerNetwork, aliases []string, what string) {
	tp.t.Helper()
	id := tp.svc(name).c.GetContainerID()
	if aliases == nil {
		_, err := suite.docker.NetworkDisconnect(ctx, nw.ID, client.NetworkDisconnectOptions{Container: id})
		tp.must("disconnect "+name, err)
		tp.logf("disconnected %s from %s", name, what)
		return
	}
	_, err := suite.docker.NetworkConnect(ctx, nw.ID, client.NetworkConnectOptions{
		Container: id, EndpointConfig: &mobynet.EndpointSettings{Aliases: aliases},
	})
	tp.must("connect "+name, err)
	tp.logf("reconnected %s to %s", name, what)
}

// add starts more services of the topology while it runs (scale-up).
func (tp *topology) add(ctx context.Context, specs ...spec) {
	tp.t.Helper()
	start := time.Now()
	tp.startAll(ctx, specs...)
	for _, s := range specs {
		tp.logf("started %s (ready after %s)", s.name, time.Since(start).Round(100*time.Millisecond))
	}
}

// stopAll stops services in parallel.
func (tp *topology) stopAll(ctx context.Context, grace time.Duration, names ...string) {
	tp.t.Helper()
	var g errgroup.Group
	for _, n := range names {
		g.Go(func() error {
			secs := int(grace.Seconds())
			start := time.Now()
			_, err := suite.docker.ContainerStop(ctx, tp.svc(n).c.GetContainerID(), client.ContainerStopOptions{Timeout: &secs})
			if err == nil {
				tp.logf("stopped %s (SIGTERM; exited after %s)", n, time.Since(start).Round(100*time.Millisecond))
			}
			return err
		})
	}
	tp.must("stop", g.Wait())
}

// waitReady polls a restarted service: the broker until it answers Kafka
// requests on its new published port, the others until their readiness
// path answers 200.
func (tp *topology) waitReady(ctx context.Context, name string, within time.Duration) {
	tp.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	s := tp.svc(name)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		addr, err := tp.hostAddr(ctx, name)
		if err == nil && s.ready == "" {
			err = kafkaPing(ctx, addr)
			if err == nil {
				tp.brokerAddr.Store(&addr)
				return
			}
		} else if err == nil {
			err = httpReady(ctx, hc, "http://"+addr+s.ready)
			if err == nil {
				return
			}
		}
		last = err
		select {
		case <-ctx.Done():
			tp.t.Fatalf("%s not ready after %s: %v", name, within, last)
		case <-tick.C:
		}
	}
}

func kafkaPing(ctx context.Context, addr string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return err
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return cl.Ping(pctx)
}

func httpReady(ctx context.Context, hc *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: GET %s: %s", errNotReady, url, resp.Status)
	}
	return nil
}
