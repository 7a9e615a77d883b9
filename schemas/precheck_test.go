package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// The precheck of call.requested.v1 (precheck.go) must agree with the
// schema file on every value: accepting one the schema refuses would write
// an invalid record; refusing one it accepts would only be slower, but is
// still a precheck that no longer follows the file.

// agree checks one value both ways and says how they differ.
func agree(t testing.TB, r CallRequested) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return // ValidateValue fails before either is asked
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	schemaErr := interpret(schemaCallRequested, b)
	fast := r.conforms()
	if fast != (schemaErr == nil) {
		t.Fatalf("precheck says %v, schema says %v, for %s", fast, schemaErr, Clip(string(b), 600))
	}
	// Through the front door too: ValidateValue gives the schema's answer
	// whether the precheck decided or not (the schema lists the problems of
	// one field in no fixed order, so they are compared sorted).
	_, err := ValidateValue(schemaCallRequested, r)
	if got, want := problems(err), problems(schemaErr); got != want {
		t.Fatalf("ValidateValue: %s\nschema: %s\nfor %s", got, want, Clip(string(b), 600))
	}
}

// problems is a validation error's field errors, sorted, or "none".
func problems(err error) string {
	return listFields(err, "; ", func(f FieldError) string { return f.Field + ": " + f.Message })
}

// listFields is a validation error's fields, each as line writes it,
// sorted and joined with sep, or "none".
func listFields(err error, sep string, line func(FieldError) string) string {
	if err == nil {
		return "none"
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		return "not a ValidationError: " + err.Error()
	}
	out := make([]string, len(ve.Fields))
	for i, f := range ve.Fields {
		out[i] = line(f)
	}
	slices.Sort(out)
	return strings.Join(out, sep)
}

// Candidate values per field: valid ones, each bound and one past it, and
// the characters a hand-written check gets wrong (non-ASCII, invalid UTF-8,
// the whitespace \s does and does not cover, a newline before the end).
var (
	pickIDs = []string{"f9e8d7c6b5a4f3e2d1c0b9a8", "F9E8D7C6B5A4F3E2D1C0B9A8", "f9e8d7c6b5a4f3e2d1c0b9a", "f9e8d7c6b5a4f3e2d1c0b9a80",
		"g9e8d7c6b5a4f3e2d1c0b9a8", "", "f9e8d7c6b5a4f3e2d1c0b9a8\n", "f9e8d7c6b5a4f3e2d1c0b9\xff8"}
	pickNames = []string{"ws_demo", "a", strings.Repeat("a", 64), strings.Repeat("b", 65), "", "a b", "a.b", "ä", "A-Z_09",
		"-", "_", "ws\n", "ws\xff", "wś"}
	pickTo = []string{"+12025550123", "+1234567", "+123456", "+123456789012345", "+1234567890123456", "+02025550123",
		"12025550123", "+1202555012a", "+", "", "+12025550123\n", " +12025550123", "+١٢٠٢٥٥٥٠١٢٣"}
	pickRooms = []string{"", "agent-x7k2m9p4q1", "a-0123456789", "-0123456789", "a-012345678", "a-01234567890",
		strings.Repeat("a", 64) + "-x7k2m9p4q1", strings.Repeat("a", 65) + "-x7k2m9p4q1", "agent-X7K2M9P4Q1",
		"agent_x7k2m9p4q1", "a-b-x7k2m9p4q1", "agent--x7k2m9p4q", "ä-x7k2m9p4q1", "agent-x7k2m9p4q1\n", "agent x7k2m9p4q1"}
	pickURLs = []string{"", "https://example.com/hooks", "http://x", "https://", "http://", "ftp://x", "HTTPS://x", "https:/x",
		"https://a b", "https://a\tb", "https://a\vb", "https://a\u00a0b", "https://a\u2028b", "https://x\n", "https://\xffx",
		"https://" + strings.Repeat("x", 2040), "https://" + strings.Repeat("x", 2041), "https://" + strings.Repeat("é", 2040),
		"https://" + strings.Repeat("é", 2041), "https://" + strings.Repeat("\xff", 2041), "httpss://x", "https://x/?q=<&>"}
	pickKeys = []string{"firstName", "_", "a", "Zipcode", "a.b-c_d", strings.Repeat("k", 64), strings.Repeat("k", 65),
		"1abc", ".a", "-a", "a b", "ä", "a\n", "", "a\xff"}
	pickValues = []string{"", "Ada", strings.Repeat("v", 4096), strings.Repeat("v", 4097), strings.Repeat("ü", 4096),
		strings.Repeat("ü", 4097), strings.Repeat("\xff", 4097), "<b>&</b>", "\u2028", "line\nbreak"}
	pickMetadata = []string{"", `{}`, `{"crm_id":"abc-123"}`, ` {"a":[1,2,{"b":null}]}`, `null`, `[]`, `"x"`, `1`, `true`,
		`[{"a":1}]`, "\n\t{}"}
	pickKeysIdem = []string{"", "k-1", strings.Repeat("i", 255), strings.Repeat("i", 256), strings.Repeat("ĳ", 255),
		strings.Repeat("ĳ", 256), strings.Repeat("\xfe", 256)}
	pickTimes = []time.Time{time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), time.Date(2026, 3, 1, 10, 0, 0, 123456789, time.FixedZone("", 5*3600+1800)),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("", -(23*3600+59*60))),
		time.Date(2024, 2, 29, 0, 0, 0, 1, time.FixedZone("LMT", -75)), {}, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
)

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

// randomRequest draws one value; most fields are valid most of the time,
// so that values with exactly one problem are common.
func randomRequest(rng *rand.Rand) CallRequested {
	valid := func(xs []string, good string) string {
		if rng.IntN(3) > 0 {
			return good
		}
		return pick(rng, xs)
	}
	r := CallRequested{
		CallID:         valid(pickIDs, pickIDs[0]),
		WorkspaceID:    valid(pickNames, "ws_demo"),
		To:             valid(pickTo, pickTo[0]),
		CallAgentID:    valid(pickNames, "agent_1"),
		RoomName:       valid(pickRooms, "agent_1-x7k2m9p4q1"),
		CallbackURL:    valid(pickURLs, pickURLs[1]),
		IdempotencyKey: valid(pickKeysIdem, ""),
		RequestedAt:    pickTimes[0],
	}
	if rng.IntN(4) == 0 {
		r.RequestedAt = pick(rng, pickTimes)
	}
	if rng.IntN(4) == 0 {
		ct := pick(rng, pickTimes)
		r.CanceledAt = &ct
	}
	if m := pick(rng, pickMetadata); m != "" {
		r.Metadata = json.RawMessage(m)
	}
	switch rng.IntN(5) {
	case 0: // none
	case 1: // the count's bound, and one past it
		r.DynamicVariables = map[string]string{}
		for i := range 64 + rng.IntN(2) {
			r.DynamicVariables[fmt.Sprintf("k%d", i)] = "v"
		}
	default:
		r.DynamicVariables = map[string]string{}
		for range rng.IntN(6) {
			r.DynamicVariables[valid(pickKeys, "firstName")] = valid(pickValues, "Ada")
		}
	}
	return r
}

func TestPrecheckMatchesSchema(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 17))
	accepted := 0
	for range 20000 {
		r := randomRequest(rng)
		agree(t, r)
		if r.conforms() {
			accepted++
		}
	}
	// Both answers must have been exercised, or the test proves little.
	if accepted < 1000 || accepted > 19000 {
		t.Fatalf("%d of 20000 random values accepted; the generator no longer mixes valid and invalid", accepted)
	}
}

// Every candidate alone in an otherwise valid request: each bound and
// each odd character is tried against the schema at least once.
func TestPrecheckEachCandidate(t *testing.T) {
	base := func() CallRequested {
		return CallRequested{CallID: pickIDs[0], WorkspaceID: "ws_demo", To: "+12025550123", CallAgentID: "agent_1",
			RequestedAt: pickTimes[0]}
	}
	agree(t, base())
	each := func(xs []string, set func(*CallRequested, string)) {
		for _, x := range xs {
			r := base()
			set(&r, x)
			agree(t, r)
		}
	}
	each(pickIDs, func(r *CallRequested, s string) { r.CallID = s })
	each(pickNames, func(r *CallRequested, s string) { r.WorkspaceID = s })
	each(pickNames, func(r *CallRequested, s string) { r.CallAgentID = s })
	each(pickTo, func(r *CallRequested, s string) { r.To = s })
	each(pickRooms, func(r *CallRequested, s string) { r.RoomName = s })
	each(pickURLs, func(r *CallRequested, s string) { r.CallbackURL = s })
	each(pickMetadata, func(r *CallRequested, s string) { r.Metadata = json.RawMessage(s) })
	each(pickKeysIdem, func(r *CallRequested, s string) { r.IdempotencyKey = s })
	for _, k := range pickKeys {
		for _, v := range pickValues {
			r := base()
			r.DynamicVariables = map[string]string{k: v}
			agree(t, r)
		}
	}
	for _, at := range pickTimes {
		r := base()
		r.RequestedAt = at
		agree(t, r)
		r.CanceledAt = &at
		agree(t, r)
	}
}

// A request with a campaign reference is the schema's to judge: the
// precheck never accepts one, and ValidateValue still does when it is
// valid.
func TestPrecheckLeavesCampaignsToTheSchema(t *testing.T) {
	r := CallRequested{CallID: pickIDs[0], WorkspaceID: "ws_demo", To: "+12025550123", CallAgentID: "agent_1",
		RequestedAt: pickTimes[0], Campaign: &CampaignRef{CampaignID: "0123456789abcdef01234567", ContactID: "c1", Attempt: 1}}
	if r.conforms() {
		t.Fatal("precheck accepted a campaign reference")
	}
	if _, err := ValidateValue(schemaCallRequested, r); err != nil {
		t.Fatalf("valid campaign call refused: %v", err)
	}
	r.Campaign.Attempt = 0
	if _, err := ValidateValue(schemaCallRequested, r); err == nil {
		t.Fatal("attempt 0 accepted")
	}
}

// FuzzPrecheckCallRequested lets the fuzzer write the strings:
// go test -fuzz FuzzPrecheckCallRequested ./schemas
func FuzzPrecheckCallRequested(f *testing.F) {
	f.Add(pickIDs[0], "ws_demo", "+12025550123", "agent_1", "agent_1-x7k2m9p4q1", "https://example.com/hooks", "firstName", "Ada", `{"a":1}`, "k-1")
	f.Add("", "", "", "", "", "", "", "", "", "")
	f.Add(pickIDs[7], "wś", "+١٢٠٢٥٥٥٠١٢٣", "a\n", "a-b-x7k2m9p4q1", "https://a\vb", "a\xff", "\u2028", "null", "\xfe")
	f.Fuzz(func(t *testing.T, id, ws, to, agent, room, url, key, val, meta, idem string) {
		r := CallRequested{CallID: id, WorkspaceID: ws, To: to, CallAgentID: agent, RoomName: room, CallbackURL: url,
			IdempotencyKey: idem, RequestedAt: pickTimes[1]}
		if key != "" || val != "" {
			r.DynamicVariables = map[string]string{key: val}
		}
		if meta != "" {
			r.Metadata = json.RawMessage(meta)
		}
		agree(t, r)
	})
}
