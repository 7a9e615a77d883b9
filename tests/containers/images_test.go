package containers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"

	"github.com/dialstream/dialstream/internal/livekitdev"
	"github.com/dialstream/dialstream/tests/testbin"
)

// images are the two images of a run, both FROM scratch: nothing is pulled.
type images struct {
	dialstream string // /dialstream: every Dialstream service, the broker, phonesim, redis, receiver
	livekit    string // /livekit-server
}

// errNoLiveKit marks a missing livekit-server binary (skip, or fail in CI).
var errNoLiveKit = errors.New("livekit-server binary not found")

// buildImages builds the run's images from static host binaries: the
// dialstream binary of tests/testbin (DIALSTREAM_BIN if set, else one `go
// build` of ./cmd/dialstream with CGO_ENABLED=0, as the release image has
// it); livekit-server from livekitdev.FindBinary
// (LIVEKIT_SERVER_BIN, .cache/bin). The images carry no CA bundle and no
// shell: every connection stays on the suite's network.
func buildImages(ctx context.Context, p *testcontainers.DockerProvider, tag string) (images, error) {
	lk, err := livekitdev.FindBinary()
	if err != nil {
		return images{}, fmt.Errorf("%w: %v", errNoLiveKit, err)
	}
	dir, err := os.MkdirTemp("", "dialstream-it-images-")
	if err != nil {
		return images{}, err
	}
	defer os.RemoveAll(dir)

	dsDir, lkDir := filepath.Join(dir, "dialstream"), filepath.Join(dir, "livekit")
	for _, d := range []string{dsDir, lkDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return images{}, err
		}
	}
	bin, err := testbin.Build(ctx)
	if err != nil {
		return images{}, err
	}
	if err := linkOrCopy(bin, filepath.Join(dsDir, "dialstream")); err != nil {
		return images{}, fmt.Errorf("dialstream binary: %w", err)
	}
	if err := linkOrCopy(lk, filepath.Join(lkDir, "livekit-server")); err != nil {
		return images{}, fmt.Errorf("livekit-server: %w", err)
	}

	build := func(ctxDir, binary, repo string) (string, error) {
		df := fmt.Sprintf("FROM scratch\nCOPY %s /%s\nENTRYPOINT [\"/%s\"]\n", binary, binary, binary)
		if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(df), 0o644); err != nil {
			return "", err
		}
		img, err := p.BuildImage(ctx, &testcontainers.ContainerRequest{FromDockerfile: testcontainers.FromDockerfile{
			Context: ctxDir, Repo: repo, Tag: tag, BuildLogWriter: io.Discard,
		}})
		if err != nil {
			return "", fmt.Errorf("build image %s:%s: %w", repo, tag, err)
		}
		return img, nil
	}
	var im images
	if im.dialstream, err = build(dsDir, "dialstream", "dialstream-it"); err != nil {
		return images{}, err
	}
	if im.livekit, err = build(lkDir, "livekit-server", "dialstream-it-livekit"); err != nil {
		removeImages(context.WithoutCancel(ctx), p.Client(), im)
		return images{}, err
	}
	return im, nil
}

func removeImages(ctx context.Context, c client.APIClient, im images) {
	for _, img := range []string{im.dialstream, im.livekit} {
		if img != "" {
			_, _ = c.ImageRemove(ctx, img, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		}
	}
}

// linkOrCopy hard-links src to dst (the binaries are large), copying when
// they are on different file systems.
func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
