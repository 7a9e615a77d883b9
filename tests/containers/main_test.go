package containers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
)

// suite is what every test of the run shares: the images and a Docker client.
var suite struct {
	runID  string
	images images
	docker client.APIClient
}

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	// Ryuk, testcontainers' reaper, is an image to pull, and nothing can be
	// pulled here; the suite removes what it creates itself (t.Cleanup).
	_ = os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	// Ports are published on the Docker host's 127.0.0.1 only. Without this,
	// testcontainers running inside a container (as CI does) would look for
	// them on the bridge gateway's address.
	_ = os.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
	flag.Parse()
	if os.Getenv("DIALSTREAM_IT_DOCKER_LOG") == "" {
		// One line per container step, for ~60 containers a run: kept out
		// of the test output unless asked for.
		tclog.SetDefault(tclog.NewNoopLogger())
	}
	if testing.Short() {
		fmt.Println("SKIP tests/containers: -short: the container suite takes minutes")
		return 0
	}

	p, err := dockerProvider()
	if err != nil {
		return unavailable(fmt.Sprintf("Docker is not available (%v)", err))
	}
	defer p.Close()
	suite.docker = p.Client()
	suite.runID = randomHex(3)
	sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
	if removed := sweepStale(sctx, suite.docker); len(removed) > 0 {
		fmt.Printf("tests/containers: removed what an earlier, interrupted run left: %s\n", strings.Join(removed, ", "))
	}
	scancel()

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	suite.images, err = buildImages(ctx, p, suite.runID)
	if errors.Is(err, errNoLiveKit) {
		return unavailable(err.Error())
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL tests/containers: %v\n", err)
		return 1
	}
	defer removeImages(context.Background(), suite.docker, suite.images)
	fmt.Printf("tests/containers: images %s and %s built in %s\n", suite.images.dialstream, suite.images.livekit,
		time.Since(start).Round(100*time.Millisecond))
	return m.Run()
}

// unavailable is the suite's one line when it cannot run: a skip on a
// developer machine, a failure under CI=true, so CI can never pass by
// silently not running it.
func unavailable(why string) int {
	why = strings.Join(strings.Fields(why), " ") // one line, whatever the error looked like
	if os.Getenv("CI") == "true" {
		fmt.Fprintf(os.Stderr, "FAIL tests/containers: CI=true and %s\n", why)
		return 1
	}
	fmt.Printf("SKIP tests/containers: %s; the container suite did not run\n", why)
	return 0
}

func dockerProvider() (p *testcontainers.DockerProvider, err error) {
	defer func() {
		// testcontainers panics on some broken Docker set-ups.
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("%v", r)
		}
	}()
	p, err = testcontainers.NewDockerProvider()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Health(ctx); err != nil {
		_ = p.Close()
		return nil, err
	}
	return p, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
