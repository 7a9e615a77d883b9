package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/dialstream/dialstream/internal/ops"
)

func init() {
	commands["probe"] = command{"GET a URL and exit 0 on 2xx: the health check of images without a shell (compose healthcheck)", runProbe, false}
}

// runProbe exists because the release image has no shell, curl or wget:
// `dialstream probe http://127.0.0.1:8081/readyz` is its container
// healthcheck. The status code decides; the reason of a not-ready answer
// (the ops format every service's /readyz answers in) is only repeated in
// the error, for the container's health log.
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
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	var st ops.Status
	if json.Unmarshal(body, &st) == nil && st.Reason != "" {
		return fmt.Errorf("probe: %s answered %s: %s", args[0], resp.Status, st.Reason)
	}
	return fmt.Errorf("probe: %s answered %s", args[0], resp.Status)
}
