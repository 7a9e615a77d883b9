package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

func init() {
	commands["probe"] = command{"GET a URL and exit 0 on 2xx: the health check of images without a shell (compose healthcheck)", runProbe}
}

// runProbe exists because the release image has no shell, curl or wget:
// `dialstream probe http://127.0.0.1:8081/readyz` is its container
// healthcheck.
func runProbe(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return errors.New("usage: dialstream probe <url>")
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("probe: %s answered %s", args[0], resp.Status)
	}
	return nil
}
