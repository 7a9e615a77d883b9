package notifier

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
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
	return appendMAC(b, hmac.New(sha256.New, key), id, ts, body)
}

// appendMAC appends signature's text to b, made with m: a fresh or reset
// HMAC-SHA256 of the key.
func appendMAC(b []byte, m hash.Hash, id string, ts int64, body []byte) []byte {
	var scratch [sha256.Size]byte
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(scratch[:0], ts, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	b = append(b, "v1,"...)
	return base64.StdEncoding.AppendEncode(b, m.Sum(scratch[:0]))
}

// macKey is a signing key with a pool of HMACs keyed with it. hmac.New
// hashes the key's two pads and allocates both hashes on every call; a MAC
// that is reset starts again from the pads' hashes kept at its first reset
// (which FIPS 198-1, section 6, allows), so a delivery hashes only its own
// message. The pool's MACs hold the key's pad states: as secret as the key,
// and kept in this process only, as the key is.
type macKey struct {
	key  []byte
	macs sync.Pool // of hash.Hash, HMAC-SHA256 keyed with key
}

func newMACKeys(keys [][]byte) []*macKey {
	out := make([]*macKey, len(keys))
	for i, k := range keys {
		out[i] = &macKey{key: k}
	}
	return out
}

// appendSignature appends signature's text to b, as the package function
// does.
func (k *macKey) appendSignature(b []byte, id string, ts int64, body []byte) []byte {
	m, _ := k.macs.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, k.key)
	} else {
		m.Reset()
	}
	b = appendMAC(b, m, id, ts, body)
	k.macs.Put(m)
	return b
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
	sign(h, newMACKeys(keys), id, at, body)
}

// sign is Sign with pooled MACs, for the delivery path.
func sign(h http.Header, keys []*macKey, id string, at time.Time, body []byte) {
	ts := at.Unix()
	sigs := make([]byte, 0, len(keys)*48)
	for i, k := range keys {
		if i > 0 {
			sigs = append(sigs, ' ')
		}
		sigs = k.appendSignature(sigs, id, ts, body)
	}
	setSignatureHeaders(h, id, ts, sigs)
}

func setSignatureHeaders(h http.Header, id string, ts int64, sigs []byte) {
	vs := []string{id, strconv.FormatInt(ts, 10), string(sigs)} // one allocation for the three
	h[canonicalWebhookID] = vs[0:1:1]
	h[canonicalWebhookTimestamp] = vs[1:2:2]
	h[canonicalWebhookSignature] = vs[2:3:3]
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
func workspaceKeys(reg *registry.Registry) (map[string][]*macKey, map[string]bool, error) {
	keys, masked := map[string][]*macKey{}, map[string]bool{}
	var errs []error
	for _, w := range reg.Workspaces() {
		masked[w.ID] = w.MaskPhoneNumbers
		k, err := signingKeys(w.WebhookSecrets)
		if err != nil {
			errs = append(errs, fmt.Errorf("workspace %s: webhook_secrets: %w", w.ID, err))
			continue
		}
		keys[w.ID] = newMACKeys(k)
	}
	return keys, masked, errors.Join(errs...)
}
