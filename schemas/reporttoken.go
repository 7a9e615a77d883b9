package schemas

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// The report token authorizes an agent's reports for one call. The dialer
// mints it into the dispatch (ReportChannel.Token); the report endpoint
// verifies it. It is stateless: an HMAC-SHA256, under a secret only those two
// hold, of the call id, the workspace and the expiry, so the endpoint needs
// no token store and a token cannot be moved to another call, another
// workspace or a later time without the secret.
//
//	dsr1.<workspace_id>.<expires, unix seconds>.<base64url HMAC>
//
// The call id is not in the token: the endpoint takes it from the URL, so a
// token used on another call's URL fails the MAC. A workspace API key is not
// a report token and never verifies as one.
//
// Weighed and not taken: a random token stored with the call. It would need
// a lookup on every report and a store that outlives the call by the
// post-call window; the HMAC needs neither, at the cost of not being
// revocable before it expires (which is the call's max duration plus the
// post-call window).
const reportTokenPrefix = "dsr1"

// Report token errors. Each is a 401 at the endpoint.
var (
	ErrReportTokenMalformed = errors.New("report token: malformed")
	ErrReportTokenInvalid   = errors.New("report token: not valid for this call")
	ErrReportTokenExpired   = errors.New("report token: expired")
)

// MintReportToken returns the report token for a call, valid until expires
// (whole seconds). secret must be the one the report endpoint verifies with.
func MintReportToken(secret []byte, callID, workspaceID string, expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	return reportTokenPrefix + "." + workspaceID + "." + exp + "." + reportMAC(secret, callID, workspaceID, exp)
}

// VerifyReportToken checks a token for the call named by callID at time now,
// against each secret in turn (the first mints; more than one lets a secret
// rotate without failing the calls in flight). It returns the token's
// workspace, which the caller must compare with the call's. The MAC is
// compared in constant time, and checked before the expiry so an expired
// token reveals nothing about one that was never valid.
func VerifyReportToken(secrets [][]byte, token, callID string, now time.Time) (workspaceID string, err error) {
	parts := strings.Split(token, ".")
	if len(parts) != 4 || parts[0] != reportTokenPrefix || parts[1] == "" {
		return "", ErrReportTokenMalformed
	}
	ws, exp, mac := parts[1], parts[2], parts[3]
	expUnix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return "", ErrReportTokenMalformed
	}
	got, err := base64.RawURLEncoding.DecodeString(mac)
	if err != nil {
		return "", ErrReportTokenMalformed
	}
	ok := false
	for _, s := range secrets {
		want, _ := base64.RawURLEncoding.DecodeString(reportMAC(s, callID, ws, exp))
		if hmac.Equal(got, want) {
			ok = true
		}
	}
	if !ok {
		return "", ErrReportTokenInvalid
	}
	if !now.Before(time.Unix(expUnix, 0)) {
		return "", ErrReportTokenExpired
	}
	return ws, nil
}

// reportMAC signs the fields with a purpose prefix, NUL-separated: ids
// cannot contain NUL, so no two field lists sign the same bytes, and the
// prefix keeps the secret's MACs from meaning anything elsewhere.
func reportMAC(secret []byte, callID, workspaceID, exp string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("dialstream agent report token v1\x00" + callID + "\x00" + workspaceID + "\x00" + exp))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// DefaultReportWindow is how long after its end a call still takes its
// agent's reports (post-call analysis), unless DIALSTREAM_AGENT_REPORT_WINDOW
// says otherwise. Ingest and the dialer must agree on it: ingest answers 409
// after it, and the dialer ignores a report that reaches it later.
const DefaultReportWindow = 15 * time.Minute

// MinReportSecretLen is the shortest report secret the services accept.
const MinReportSecretLen = 32

// ReportTokenExpiry is when the report token of a call dispatched at
// dispatched expires: after the longest the call can ring and last, plus
// the post-call window.
func ReportTokenExpiry(dispatched time.Time, ringing, maxDuration, window time.Duration) time.Time {
	return dispatched.Add(ringing + maxDuration + window).Truncate(time.Second)
}

// ReportSecrets turns DIALSTREAM_AGENT_REPORT_SECRET's comma-separated list
// into keys, the minting one first.
func ReportSecrets(list []string) [][]byte {
	var out [][]byte
	for _, s := range list {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, []byte(s))
		}
	}
	return out
}
