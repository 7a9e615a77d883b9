package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dialstream/dialstream/ingest"
)

// The API client of the CLI commands (campaign, tail): the same key and
// headers as any client of the HTTP API, so the CLI can do nothing a
// workspace's key cannot.
//
// The key comes from DIALSTREAM_API_KEY or a file (--api-key-file), never
// from a flag: a flag's value shows in ps and in the shell's history.

const (
	envAPIURL    = "DIALSTREAM_API_URL"
	envAPIKey    = "DIALSTREAM_API_KEY"
	envWorkspace = "DIALSTREAM_WORKSPACE"
	// defaultAPIURL is ingest's default listen address (INGEST_HTTP_ADDR).
	defaultAPIURL = "http://" + ingest.DefaultHTTPAddr
)

// apiFlags are the connection flags every API command takes.
type apiFlags struct {
	url, keyFile, workspace *string
}

func addAPIFlags(fs *flag.FlagSet, getenv func(string) string) apiFlags {
	url := getenv(envAPIURL)
	if url == "" {
		url = defaultAPIURL
	}
	return apiFlags{
		url:       fs.String("api-url", url, "the API's base URL ("+envAPIURL+")"),
		keyFile:   fs.String("api-key-file", "", "a file holding the API key (default: "+envAPIKey+")"),
		workspace: fs.String("workspace", getenv(envWorkspace), "the workspace the key belongs to ("+envWorkspace+")"),
	}
}

// client builds the client, or says every missing setting at once.
func (f apiFlags) client(getenv func(string) string) (*apiClient, error) {
	var problems []string
	key := getenv(envAPIKey)
	if *f.keyFile != "" {
		b, err := os.ReadFile(*f.keyFile)
		key = strings.TrimSpace(string(b))
		if err != nil {
			problems = append(problems, "--api-key-file: "+err.Error())
		} else if key == "" {
			// Not a fall back to DIALSTREAM_API_KEY, nor a request with an
			// empty key that the API answers 401 far from the cause.
			problems = append(problems, fmt.Sprintf("--api-key-file: %s is empty", *f.keyFile))
		}
	}
	if key == "" && *f.keyFile == "" {
		problems = append(problems, envAPIKey+": required (the workspace's API key; or --api-key-file)")
	}
	if *f.workspace == "" {
		problems = append(problems, "--workspace: required (or "+envWorkspace+")")
	}
	base := strings.TrimSuffix(*f.url, "/")
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		problems = append(problems, fmt.Sprintf("--api-url: must be an http or https URL, got %q", *f.url))
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return &apiClient{base: base, key: key, workspace: *f.workspace, http: &http.Client{}, retryWait: time.Second}, nil
}

type apiClient struct {
	base, key, workspace string
	// http has no overall timeout: an upload of 100,000 rows and a stream
	// take as long as they take; each call bounds itself with its context.
	http *http.Client
	// retryWait is the first wait between attempts of a create (doubling).
	retryWait time.Duration
}

// apiError is an error answer of the API, its envelope's message.
type apiError struct {
	code       int
	message    string
	retryAfter time.Duration
}

func (e *apiError) Error() string { return fmt.Sprintf("%d: %s", e.code, e.message) }

// transient says whether asking again later may succeed.
func (e *apiError) transient() bool { return e.code == 429 || e.code >= 500 }

func (c *apiClient) request(ctx context.Context, method, path, contentType string, body io.Reader) (*http.Request, error) {
	r, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	r.Header.Set("Authorization", "Bearer "+c.key)
	r.Header.Set("x-workspace-id", c.workspace)
	r.Header.Set("User-Agent", "dialstream-cli")
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return r, nil
}

// do sends one request and decodes a 2xx answer into out; any other answer
// is an *apiError, a failure to reach the API an *errUnreachable.
func (c *apiClient) do(ctx context.Context, method, path, contentType string, body io.Reader, size int64, out any) error {
	return c.doKeyed(ctx, method, path, contentType, body, size, "", out)
}

// doKeyed is do with an Idempotency-Key, when idemKey is not empty.
func (c *apiClient) doKeyed(ctx context.Context, method, path, contentType string, body io.Reader, size int64, idemKey string, out any) error {
	r, err := c.request(ctx, method, path, contentType, body)
	if err != nil {
		return err
	}
	if size > 0 {
		r.ContentLength = size
	}
	if idemKey != "" {
		r.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := c.http.Do(r)
	if err != nil {
		return &errUnreachable{fmt.Errorf("%s %s: %w", method, path, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return readAPIError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: the answer is not what the API sends: %w", method, path, err)
	}
	return nil
}

// errUnreachable is a request that got no answer (connection refused or
// reset, a timeout): transient.
type errUnreachable struct{ err error }

func (e *errUnreachable) Error() string { return e.err.Error() }
func (e *errUnreachable) Unwrap() error { return e.err }

// readAPIError reads the error envelope, or says what came instead (a proxy's
// page, say).
func readAPIError(resp *http.Response) *apiError {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &apiError{code: resp.StatusCode}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.retryAfter = time.Duration(s) * time.Second
	}
	var env ingest.ErrorResponse
	if json.Unmarshal(b, &env) == nil && env.Message != "" {
		e.message = env.Message
		for _, f := range env.Errors {
			e.message += "\n  " + f.Field + ": " + f.Message
		}
		return e
	}
	e.message = strings.TrimSpace(http.StatusText(resp.StatusCode) + " " + strings.TrimSpace(string(b)))
	return e
}
