package notifier

import (
	"errors"
	"net/http"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// The Standard Webhooks specification's own example: our signer must produce
// exactly its signature.
func TestSignatureKnownAnswer(t *testing.T) {
	key, err := signingKey(secretA)
	if err != nil {
		t.Fatal(err)
	}
	got := signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
}

// An independent implementation (the standard-webhooks Go library) verifies
// what Sign produces, and rejects a tampered body, an old timestamp and the
// wrong secret. During a rotation, receivers with either secret verify.
func TestSignatureVerifiedByStandardWebhooksLibrary(t *testing.T) {
	body := []byte(`{"type":"call.ended","timestamp":"2026-11-26T10:00:00Z","data":{"call_id":"f9e8d7c6b5a4f3e2d1c0b9a8"}}`)
	lib := func(secret string) *standardwebhooks.Webhook {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		return wh
	}
	sign := func(secrets []string, at time.Time) http.Header {
		keys, err := signingKeys(secrets)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		Sign(h, keys, "f9e8d7c6b5a4f3e2d1c0b9a8-5", at, body)
		return h
	}

	h := sign([]string{secretA}, time.Now())
	if err := lib(secretA).Verify(body, h); err != nil {
		t.Fatalf("library rejects a valid delivery: %v", err)
	}
	if err := Verify(h, body, []string{secretA}, time.Now(), 5*time.Minute); err != nil {
		t.Fatalf("own Verify rejects a valid delivery: %v", err)
	}

	tampered := append([]byte(nil), body...)
	tampered[len(tampered)-3] = 'X'
	if err := lib(secretA).Verify(tampered, h); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Fatalf("tampered body: %v", err)
	}
	if err := Verify(h, tampered, []string{secretA}, time.Now(), 5*time.Minute); !errors.Is(err, ErrNoMatch) {
		t.Fatalf("own Verify, tampered body: %v", err)
	}

	old := sign([]string{secretA}, time.Now().Add(-10*time.Minute))
	if err := lib(secretA).Verify(body, old); !errors.Is(err, standardwebhooks.ErrMessageTooOld) {
		t.Fatalf("old timestamp: %v", err)
	}
	if err := Verify(old, body, []string{secretA}, time.Now(), 5*time.Minute); !errors.Is(err, ErrBadTimestamp) {
		t.Fatalf("own Verify, old timestamp: %v", err)
	}

	if err := lib(secretBNew).Verify(body, h); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Fatalf("wrong secret: %v", err)
	}

	rot := sign([]string{secretBNew, secretBOld}, time.Now())
	for _, s := range []string{secretBNew, secretBOld} {
		if err := lib(s).Verify(body, rot); err != nil {
			t.Fatalf("rotation: receiver with %s rejects: %v", s, err)
		}
	}
	if err := lib(secretA).Verify(body, rot); err == nil {
		t.Fatal("rotation: a third secret verifies")
	}
}

func TestSigningKeyRejectsMalformedSecrets(t *testing.T) {
	for _, s := range []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!!"} {
		if _, err := signingKey(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

// The delivery path's pooled MACs sign exactly as Sign does, also when a
// MAC is reused for another message (a reset MAC must not carry the last
// one's state).
func TestPooledSignatureMatchesSign(t *testing.T) {
	keys, err := signingKeys([]string{secretBNew, secretBOld})
	if err != nil {
		t.Fatal(err)
	}
	pooled := newMACKeys(keys)
	at := time.Unix(1_764_000_000, 0)
	for i, body := range []string{`{"a":1}`, ``, `{"type":"call.ended","data":{"call_id":"f9e8d7c6b5a4f3e2d1c0b9a8"}}`, `{"a":1}`} {
		id := "f9e8d7c6b5a4f3e2d1c0b9a8-" + string(rune('1'+i))
		want, got := http.Header{}, http.Header{}
		Sign(want, keys, id, at, []byte(body))
		sign(got, pooled, id, at, []byte(body))
		for _, k := range []string{HeaderWebhookID, HeaderWebhookTimestamp, HeaderWebhookSignature} {
			if got.Get(k) != want.Get(k) || len(got.Values(k)) != 1 {
				t.Fatalf("body %d: %s = %q, want %q", i, k, got.Values(k), want.Get(k))
			}
		}
	}
}
