package main

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"

	"github.com/dialstream/dialstream/internal/registry"
)

func init() {
	commands["hash-key"] = command{"print the api_key_sha256 digest of an API key read from stdin", runHashKey, true}
}

var errEmptyKey = errors.New("hash-key: no key on stdin (keys are not taken as arguments, so they stay out of shell history)")

func runHashKey(_ context.Context, _ []string) error {
	b, err := io.ReadAll(io.LimitReader(os.Stdin, 4096))
	if err != nil {
		return err
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return errEmptyKey
	}
	_, err = os.Stdout.WriteString(registry.HashKey(key) + "\n")
	return err
}
