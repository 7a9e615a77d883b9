package notifier

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dialstream/dialstream/internal/registry"
)

// Standard Webhooks headers (https://www.standardwebhooks.com).
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

const secretPrefix = "whsec_"

// signingKey decodes a "whsec_<base64>" secret into the HMAC key.
func signingKey(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, secretPrefix)
	if !ok {
		return nil, errors.New("webhook secret must start with whsec_")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("webhook secret is not whsec_<base64>: %w", err)
	}
	return key, nil
}

// signingKeys decodes every secret of a workspace, current first.
func signingKeys(secrets []string) ([][]byte, error) {
	keys := make([][]byte, 0, len(secrets))
	for i, s := range secrets {
		k, err := signingKey(s)
		if err != nil {
			return nil, fmt.Errorf("secret %d: %w", i+1, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// signature returns "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>".
func signature(key []byte, id string, ts int64, body []byte) string {
	return string(appendSignature(nil, key, id, ts, body))
}

// appendSignature appends signature's text to b.
func appendSignature(b, key []byte, id string, ts int64, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	var scratch [sha256.Size]byte
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(scratch[:0], ts, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	b = append(b, "v1,"...)
	return base64.StdEncoding.AppendEncode(b, m.Sum(scratch[:0]))
}

// The header keys as http.Header stores them, so Sign writes them without
// canonicalizing on every delivery.
var (
	canonicalWebhookID        = http.CanonicalHeaderKey(HeaderWebhookID)
	canonicalWebhookTimestamp = http.CanonicalHeaderKey(HeaderWebhookTimestamp)
	canonicalWebhookSignature = http.CanonicalHeaderKey(HeaderWebhookSignature)
)

// Sign sets the three Standard Webhooks headers on h: one v1 signature per
// key, space-separated, so a receiver holding either the old or the new
// secret during a rotation verifies the delivery.
func Sign(h http.Header, keys [][]byte, id string, at time.Time, body []byte) {
	ts := at.Unix()
	sigs := make([]byte, 0, len(keys)*48)
	for i, k := range keys {
		if i > 0 {
			sigs = append(sigs, ' ')
		}
		sigs = appendSignature(sigs, k, id, ts, body)
	}
	h[canonicalWebhookID] = []string{id}
	h[canonicalWebhookTimestamp] = []string{strconv.FormatInt(ts, 10)}
	h[canonicalWebhookSignature] = []string{string(sigs)}
}

// Verification errors.
var (
	ErrMissingHeaders = errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature")
	ErrBadTimestamp   = errors.New("webhook: timestamp outside the tolerance")
	ErrNoMatch        = errors.New("webhook: no signature matches")
)

// Verify checks a delivery the way a receiver should: the timestamp within
// tolerance of now (replay protection) and at least one v1 signature made
// with one of secrets ("whsec_..."). The comparison is constant-time.
func Verify(h http.Header, body []byte, secrets []string, now time.Time, tolerance time.Duration) error {
	id, tsStr, sigs := h.Get(HeaderWebhookID), h.Get(HeaderWebhookTimestamp), h.Get(HeaderWebhookSignature)
	if id == "" || tsStr == "" || sigs == "" {
		return ErrMissingHeaders
	}
	ts, err := strconv.ParseInt(tsStr, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q is not unix seconds", ErrBadTimestamp, tsStr)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %s off", ErrBadTimestamp, d.Round(time.Second))
	}
	keys, err := signingKeys(secrets)
	if err != nil {
		return err
	}
	for _, k := range keys {
		want := signature(k, id, ts, body)
		for _, got := range strings.Fields(sigs) {
			if hmac.Equal([]byte(got), []byte(want)) {
				return nil
			}
		}
	}
	return ErrNoMatch
}

// workspaceKeys decodes every workspace's webhook secrets once, so a broken
// secret stops startup instead of failing deliveries one by one.
func workspaceKeys(reg *registry.Registry) (map[string][][]byte, map[string]bool, error) {
	keys, masked := map[string][][]byte{}, map[string]bool{}
	var errs []error
	for _, w := range reg.Workspaces() {
		masked[w.ID] = w.MaskPhoneNumbers
		k, err := signingKeys(w.WebhookSecrets)
		if err != nil {
			errs = append(errs, fmt.Errorf("workspace %s: webhook_secrets: %w", w.ID, err))
			continue
		}
		keys[w.ID] = k
	}
	return keys, masked, errors.Join(errs...)
}
