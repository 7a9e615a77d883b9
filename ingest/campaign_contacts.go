package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/dialstream/dialstream/internal/compliance"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/schemas"
)

// Contacts of a campaign: inline in POST /v1/api/campaigns, or uploaded to
// POST /v1/api/campaigns/:campaignId/contacts as a JSON array or text/csv
// (campaign_contacts_csv.go). An upload is streamed: rows are parsed one by
// one and written as they come, in records of at most MaxContactsPerRecord,
// so 100,000 rows go in one request and memory holds one record's contacts
// plus the numbers and ids seen in this upload (to report repeats). A bad
// row is reported with its row number and skipped; it never blocks the good
// ones.

const (
	// maxContactsBodyBytes caps one upload: 100,000 rows with a few
	// variables each, with room to spare.
	maxContactsBodyBytes = 64 << 20
	// maxContactBytes caps one contact as encoded in the record, so that a
	// record of contacts stays under Kafka's 1 MiB default however the
	// upload is shaped.
	maxContactBytes = 16 << 10
	// maxRecordBytes closes a record before MaxContactsPerRecord when its
	// contacts reach this size.
	maxRecordBytes = 768 << 10
	// maxReportedRows caps the errors an answer lists; Skipped counts all.
	maxReportedRows = 1000
)

var contactIDRE = regexp.MustCompile(`^[A-Za-z0-9_.:@+-]{1,128}$`)

// upload writes one upload's contacts to the campaign, a record at a time.
type upload struct {
	h      *handler
	ctx    context.Context
	ws     *registry.Workspace
	id     string // campaign
	agent  string // the campaign's call_agent_id
	upload string // upload_id: one upload's records share it
	now    time.Time

	// seen are the numbers and contact ids of this upload: a repeat is
	// reported, not sent (the scheduler would keep the first anyway, but
	// the client would not learn of it).
	seenNumbers map[string]int
	seenIDs     map[string]int
	batch       []schemas.Contact
	batchBytes  int
	report      ContactsReport
	err         *apiError // Kafka or the records failed: nothing more is written
	records     int
}

func (h *handler) newUpload(ctx context.Context, ws *registry.Workspace, campaignID, agent string) *upload {
	return &upload{h: h, ctx: ctx, ws: ws, id: campaignID, agent: agent, upload: newCampaignID(), now: h.now().UTC(),
		seenNumbers: map[string]int{}, seenIDs: map[string]int{}, report: ContactsReport{Errors: []ContactError{}}}
}

// reject reports row as not imported.
func (u *upload) reject(row int, contactID, to, reason string) {
	u.report.Skipped++
	if len(u.report.Errors) >= maxReportedRows {
		u.report.ErrorsTruncated = true
		return
	}
	if to != "" && u.ws.MaskPhoneNumbers {
		to = obs.MaskPhone(to)
	}
	u.report.Errors = append(u.report.Errors, ContactError{Row: row, ContactID: schemas.Clip(strings.ToValidUTF8(contactID, "?"), 128),
		To: schemas.Clip(strings.ToValidUTF8(to, "?"), maxPhoneInput), Reason: reason})
}

// neverCallable is why the workspace's rules would refuse every call to
// number, whenever it is released: it is on the do-not-call list, or its
// destination is not allowed (country, premium rate, ...). A contact like that
// is reported at upload, as POST /v1/api/call refuses such a call at once.
// The rules that depend on the moment (calling hours, attempt caps) are left
// to the release and the dial. While the list is still loading nothing is
// refused here: the dialer checks every call again right before it dials.
func (u *upload) neverCallable(number string) string {
	if u.h.comp == nil {
		return ""
	}
	v, err := u.h.comp.Check(u.ws.ID, u.agent, number, u.now)
	if err != nil || (v.Outcome != compliance.OutcomeSuppressed && v.Outcome != compliance.OutcomeDestinationNotAllowed) {
		return ""
	}
	if u.ws.MaskPhoneNumbers {
		return "refused by compliance rule " + string(v.Outcome)
	}
	return "refused by compliance rule " + string(v.Outcome) + ": " + v.Reason
}

// rawContact is a contact as the client wrote it, before checkContact.
type rawContact struct {
	to, contactID, timezone string
	vars                    map[string]string
	metadata                json.RawMessage
}

// add checks one contact and queues it for the next record, writing the
// batch when it is full.
func (u *upload) add(row int, rc rawContact) {
	if u.err != nil {
		return
	}
	to, msg := normalizePhone(rc.to, u.h.lim.defaultRegion, u.h.lim.allowTest)
	if msg != "" {
		u.reject(row, rc.contactID, rc.to, "to "+msg)
		return
	}
	id := rc.contactID
	if id == "" {
		id = to
	} else if !contactIDRE.MatchString(id) {
		u.reject(row, id, to, "contact_id must be 1 to 128 letters, digits, or _ . : @ + -")
		return
	}
	if rc.timezone != "" {
		if msg := checkTimezone(rc.timezone); msg != "" {
			u.reject(row, id, to, "timezone "+msg)
			return
		}
	}
	if why := u.neverCallable(to); why != "" {
		u.reject(row, id, to, why)
		return
	}
	if prev, ok := u.seenNumbers[to]; ok {
		u.reject(row, id, to, fmt.Sprintf("duplicate number: row %d of this upload has it", prev))
		return
	}
	if prev, ok := u.seenIDs[id]; ok {
		u.reject(row, id, to, fmt.Sprintf("duplicate contact_id: row %d of this upload has it", prev))
		return
	}
	ct := schemas.Contact{ContactID: id, To: to, Row: row, Timezone: rc.timezone, DynamicVariables: rc.vars, Metadata: rc.metadata}
	b, _ := json.Marshal(ct)
	if len(b) > maxContactBytes {
		u.reject(row, id, to, fmt.Sprintf("too long: the contact is %d bytes encoded; at most %d are allowed", len(b), maxContactBytes))
		return
	}
	u.seenNumbers[to], u.seenIDs[id] = row, row
	if u.batchBytes+len(b) > maxRecordBytes {
		u.flush()
	}
	u.batch = append(u.batch, ct)
	u.batchBytes += len(b)
	if len(u.batch) >= schemas.MaxContactsPerRecord {
		u.flush()
	}
}

// addJSON checks one element of a JSON array of contacts.
func (u *upload) addJSON(row int, raw json.RawMessage) {
	if !utf8.Valid(raw) {
		u.reject(row, "", "", "invalid UTF-8: send the contact in UTF-8")
		return
	}
	members, dups, ok := readObject(raw)
	if !ok {
		u.reject(row, "", "", "must be a JSON object {\"to\": ..., \"contact_id\": ..., \"timezone\": ..., \"dynamic_variables\": {...}, \"metadata\": {...}}, got "+jsonKind(raw))
		return
	}
	var rc rawContact
	bad := func(reason string) { u.reject(row, rc.contactID, rc.to, reason) }
	for _, k := range dups {
		bad(k + " appears more than once")
		return
	}
	// to and contact_id first, so every later error names them.
	var rest []member
	for _, m := range members {
		switch m.key {
		case "to", "contact_id":
			s, ok := jsonString(m.val)
			if !ok {
				bad(m.key + " must be a string, got " + jsonKind(m.val))
				return
			}
			if m.key == "to" {
				rc.to = s
			} else {
				rc.contactID = s
			}
		default:
			rest = append(rest, m)
		}
	}
	if rc.to == "" {
		bad("to is required: the number to call, in E.164 format, e.g. " + exampleNumber)
		return
	}
	for _, m := range rest {
		if isNull(m.val) {
			continue
		}
		switch m.key {
		case "timezone":
			s, ok := jsonString(m.val)
			if !ok {
				bad("timezone must be a string, got " + jsonKind(m.val))
				return
			}
			rc.timezone = s
		case "dynamic_variables":
			vars, errs := parseVariables(m.val, u.h.lim)
			if len(errs) > 0 {
				bad(errs[0].Field + " " + errs[0].Message)
				return
			}
			rc.vars = vars
		case "metadata":
			if m.val[0] != '{' {
				bad("metadata must be a JSON object, got " + jsonKind(m.val))
				return
			}
			rc.metadata = m.val
		default:
			bad("unknown field " + schemas.Clip(m.key, 64) + "; the fields are to, contact_id, timezone, dynamic_variables, metadata")
			return
		}
	}
	u.add(row, rc)
}

// flush writes the queued contacts as one record, first dropping the
// numbers the campaign already has (the records' view, per batch: one
// query per record, not per row). Numbers added through another upload
// that the records do not show yet pass here; the scheduler skips them.
func (u *upload) flush() {
	if u.err != nil || len(u.batch) == 0 {
		return
	}
	if u.h.campaigns != nil {
		numbers := make([]string, len(u.batch))
		for i, c := range u.batch {
			numbers[i] = c.To
		}
		ctx, cancel := context.WithTimeout(u.ctx, recordsTimeout)
		have, err := u.h.campaigns.CampaignNumbers(ctx, u.ws.ID, u.id, numbers)
		cancel()
		if err != nil {
			u.err = u.h.recordsUnavailable(u.ctx, err)
			return
		}
		if len(have) > 0 {
			kept := u.batch[:0]
			for _, c := range u.batch {
				if other, ok := have[c.To]; ok {
					u.reject(c.Row, c.ContactID, c.To, "duplicate number: already in the campaign as contact "+other)
					continue
				}
				kept = append(kept, c)
			}
			u.batch = kept
			if len(kept) == 0 {
				u.batchBytes = 0
				return
			}
		}
	}
	data := schemas.CampaignContacts{CampaignID: u.id, WorkspaceID: u.ws.ID, UploadID: u.upload, Contacts: u.batch, AddedAt: u.now}
	rec, err := schemas.NewRecord(schemas.TopicCampaignCommands, u.id,
		schemas.Meta{Type: schemas.TypeCampaignContacts, Source: EventSource, Subject: u.id}, data)
	if err != nil {
		// The checks above mirror the schema's; a gap costs the batch's
		// rows, reported, never the upload.
		u.h.log.WarnContext(u.ctx, "contacts passed ingest checks but failed the schema", "campaign_id", u.id, "workspace_id", u.ws.ID, "error", err)
		for _, c := range u.batch {
			u.reject(c.Row, c.ContactID, c.To, "refused by the contact schema: "+schemas.Clip(err.Error(), 300))
		}
	} else if err := u.h.produceAll(u.ctx, rec); err != nil {
		u.h.log.WarnContext(u.ctx, "contacts not written: Kafka did not acknowledge", "campaign_id", u.id, "workspace_id", u.ws.ID, "error", err.Error())
		u.err = &apiError{code: http.StatusServiceUnavailable, reason: reasonKafkaUnavailable, retryAfter: 2}
		return
	} else {
		u.report.Accepted += len(u.batch)
		u.records++
		u.h.ownCamps.addAccepted(u.id, len(u.batch))
	}
	// A fresh slice: the record's encoding is done, but the kept one may
	// still be referenced by a slow promise.
	u.batch, u.batchBytes = make([]schemas.Contact, 0, schemas.MaxContactsPerRecord), 0
}

// finish writes what is queued; the error is the first failure that
// stopped the upload.
func (u *upload) finish() *apiError {
	u.flush()
	return u.err
}

// ContactsUploaded is the answer of POST /v1/api/campaigns/:campaignId/contacts.
type ContactsUploaded struct {
	Status     string `json:"status"` // always "success"
	CampaignID string `json:"campaign_id"`
	UploadID   string `json:"upload_id"`
	ContactsReport
}

// uploadContacts serves POST /v1/api/campaigns/:campaignId/contacts.
func (h *handler) uploadContacts(c *gin.Context) {
	ws := workspaceOf(c)
	if aerr := h.admit(ws); aerr != nil {
		h.fail(c, aerr)
		return
	}
	ctx := c.Request.Context()
	ref, aerr := h.findCampaign(ctx, ws.ID, c.Param("campaignId"))
	if aerr != nil {
		h.fail(c, aerr)
		return
	}
	ct := c.GetHeader("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || (mt != "application/json" && mt != "text/csv") ||
		(params["charset"] != "" && !strings.EqualFold(params["charset"], "utf-8")) {
		got := ct
		if got == "" {
			got = "none"
		}
		h.fail(c, &apiError{code: http.StatusUnsupportedMediaType, reason: reasonUnsupportedMedia,
			message: "Content-Type must be application/json (an array of contacts) or text/csv (a header row, then one contact per row), in UTF-8; got " + schemas.Clip(got, 128),
			header:  http.Header{"Accept-Post": {"application/json, text/csv"}}})
		return
	}
	if finalCampaign(ref.status) {
		h.fail(c, &apiError{code: http.StatusConflict, reason: reasonCampaignEnded,
			message: fmt.Sprintf("campaign %s is %s; it takes no more contacts", ref.id, ref.status)})
		return
	}
	if c.Request.ContentLength > maxContactsBodyBytes {
		h.fail(c, contactsTooLarge())
		return
	}
	body := http.MaxBytesReader(c.Writer, c.Request.Body, maxContactsBodyBytes)
	up := h.newUpload(ctx, ws, ref.id, ref.agent)
	if mt == "text/csv" {
		aerr = up.readCSV(body)
	} else {
		aerr = up.readJSON(body)
	}
	if aerr == nil {
		aerr = up.finish()
	}
	if aerr != nil {
		if up.report.Accepted > 0 && aerr.message == "" {
			aerr.message = fmt.Sprintf("the upload stopped after %d contacts were written: Kafka did not acknowledge in time; send the rows not written again (rows already written are reported as already in the campaign)", up.report.Accepted)
		} else if aerr.message == "" {
			aerr.message = fmt.Sprintf("no contact was written: Kafka did not acknowledge them within %s; retry later", h.cfg.Kafka.ProduceTimeout)
		}
		h.fail(c, aerr)
		return
	}
	h.log.InfoContext(ctx, "campaign contacts uploaded", "campaign_id", ref.id, "workspace_id", ws.ID, "upload_id", up.upload,
		"format", mt, "accepted", up.report.Accepted, "skipped", up.report.Skipped, "records", up.records)
	writeJSON(c, http.StatusOK, ContactsUploaded{Status: "success", CampaignID: ref.id, UploadID: up.upload, ContactsReport: up.report})
}

func contactsTooLarge() *apiError {
	return &apiError{code: http.StatusRequestEntityTooLarge, reason: reasonBodyTooLarge,
		message: fmt.Sprintf("the upload is larger than %d bytes; split it into several uploads", maxContactsBodyBytes)}
}

// bodyError is the answer for a body that could not be read to its end.
func bodyError(err error) *apiError {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return contactsTooLarge()
	}
	return &apiError{code: http.StatusBadRequest, reason: reasonMalformed, message: "could not read the body: " + err.Error()}
}

// readJSON streams a JSON array of contacts: one element in memory at a
// time. Malformed JSON stops the upload (400) since nothing after it can be
// trusted to be a row; the records already written stay written, and the
// answer says how many.
func (u *upload) readJSON(r io.Reader) *apiError {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	malformed := func(err error) *apiError {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return contactsTooLarge()
		}
		msg := syntaxMessage(err)
		if u.report.Accepted > 0 {
			msg += fmt.Sprintf("; %d contacts before it were written", u.report.Accepted)
		}
		return &apiError{code: http.StatusBadRequest, reason: reasonMalformed, message: msg}
	}
	tok, err := dec.Token()
	if err == io.EOF {
		return &apiError{code: http.StatusBadRequest, reason: reasonMalformed, message: "request body is empty; send a JSON array of contacts"}
	}
	if err != nil {
		return malformed(err)
	}
	if tok != json.Delim('[') {
		return &apiError{code: http.StatusBadRequest, reason: reasonMalformed, message: "request body must be a JSON array of contacts"}
	}
	for row := 1; dec.More(); row++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return malformed(err)
		}
		u.addJSON(row, raw)
		if u.err != nil {
			return u.err
		}
	}
	if _, err := dec.Token(); err != nil {
		return malformed(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = errors.New("data after the array")
		}
		return malformed(err)
	}
	return nil
}
