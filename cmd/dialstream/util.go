package main

import (
	"errors"
	"io"
	"os"

	"github.com/dialstream/dialstream/internal/registry"
)

var errEmptyKey = errors.New("hash-key: no key on stdin (keys are not taken as arguments, so they stay out of shell history)")

func hashKey(k string) string { return registry.HashKey(k) }

var stderr = os.Stderr

func readAllLimited(r io.Reader, n int64) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r, n))
}
