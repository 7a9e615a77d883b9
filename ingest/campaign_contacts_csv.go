package ingest

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/dialstream/dialstream/schemas"
)

// A CSV upload of contacts: a header row, then one contact per row.
//
//	to,contact_id,timezone,firstName,metadata.crm_id
//	+12025550123,c-1,America/New_York,Ada,42
//
// Columns: to (required), contact_id, timezone, metadata.<key> (a string
// member of the contact's metadata), and every other column a dynamic
// variable of that name. A bad header refuses the whole upload (422): no row
// could be read right. Empty cells are absent values.
//
// Row numbers are the file's line numbers, the header being line 1, so the
// first contact is row 2: what a spreadsheet shows beside the row, as long
// as no cell holds a line break (a quoted cell that does counts as the line
// it starts on).

// csvColumn is what one header column holds.
type csvColumn struct {
	kind int // colTo, colID, colTZ, colMeta, colVar
	name string
}

const (
	colTo = iota + 1
	colID
	colTZ
	colMeta
	colVar
)

// contactsCSV reads rows against a parsed header.
type contactsCSV struct {
	cols []csvColumn
	to   int // index of the to column
	lim  limits
}

// parseContactsHeader checks the header row; the errors name each bad
// column.
func parseContactsHeader(fields []string, lim limits) (*contactsCSV, []FieldError) {
	var errs []FieldError
	add := func(i int, format string, args ...any) {
		errs = append(errs, FieldError{Field: fmt.Sprintf("header column %d", i+1), Message: fmt.Sprintf(format, args...)})
	}
	p := &contactsCSV{to: -1, lim: lim}
	seen := map[string]int{}
	vars := 0
	for i, f := range fields {
		if i == 0 {
			f = strings.TrimPrefix(f, "\ufeff") // the byte order mark spreadsheets write
		}
		name := strings.TrimSpace(f)
		if !utf8.ValidString(name) {
			add(i, "is not valid UTF-8: save the file as CSV UTF-8")
			continue
		}
		if prev, ok := seen[name]; ok {
			add(i, "%q repeats column %d", schemas.Clip(name, 64), prev+1)
			continue
		}
		seen[name] = i
		switch {
		case name == "to":
			p.to = i
			p.cols = append(p.cols, csvColumn{kind: colTo})
		case name == "contact_id":
			p.cols = append(p.cols, csvColumn{kind: colID})
		case name == "timezone":
			p.cols = append(p.cols, csvColumn{kind: colTZ})
		case strings.HasPrefix(name, "metadata."):
			key := strings.TrimPrefix(name, "metadata.")
			if key == "" || len(key) > 64 {
				add(i, "%q: a metadata column is metadata.<key>, the key 1 to 64 bytes", schemas.Clip(name, 80))
				continue
			}
			p.cols = append(p.cols, csvColumn{kind: colMeta, name: key})
		case varKeyRE.MatchString(name):
			vars++
			p.cols = append(p.cols, csvColumn{kind: colVar, name: name})
		default:
			add(i, "%q is not a column name: the columns are to, contact_id, timezone, metadata.<key>, and dynamic variables named by 1 to 64 characters, a letter or _ first, then letters, digits, _, . or -", schemas.Clip(name, 64))
		}
	}
	if p.to < 0 && len(errs) == 0 {
		errs = append(errs, FieldError{Field: "header", Message: "has no to column: the first row names the columns, e.g. to,contact_id,firstName"})
	}
	if vars > lim.maxVariables {
		errs = append(errs, FieldError{Field: "header", Message: fmt.Sprintf("has %d dynamic variable columns; at most %d are allowed", vars, lim.maxVariables)})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return p, nil
}

// contact reads one row, or says why it is not a contact ("" reason and
// skip: a row of empty cells, which spreadsheets append).
func (p *contactsCSV) contact(fields []string) (rc rawContact, reason string, skip bool) {
	if p.to < len(fields) {
		rc.to = strings.TrimSpace(fields[p.to])
	}
	blank := true
	for _, f := range fields {
		if strings.TrimSpace(f) != "" {
			blank = false
			break
		}
	}
	if blank {
		return rc, "", true
	}
	if len(fields) > len(p.cols) {
		return rc, fmt.Sprintf("unknown column: the row has %d fields, the header names %d", len(fields), len(p.cols)), false
	}
	for _, f := range fields {
		if !utf8.ValidString(f) {
			return rc, "invalid UTF-8: save the file as CSV UTF-8", false
		}
	}
	var meta map[string]string
	for i, f := range fields {
		col := p.cols[i]
		v := f
		if col.kind != colVar && col.kind != colMeta {
			v = strings.TrimSpace(f)
		}
		if v == "" {
			continue
		}
		switch col.kind {
		case colID:
			rc.contactID = v
		case colTZ:
			rc.timezone = v
		case colVar:
			if n := utf8.RuneCountInString(v); n > p.lim.maxValueLength {
				return rc, fmt.Sprintf("%s is %d characters long; at most %d are allowed", col.name, n, p.lim.maxValueLength), false
			}
			if rc.vars == nil {
				rc.vars = map[string]string{}
			}
			rc.vars[col.name] = v
		case colMeta:
			if meta == nil {
				meta = map[string]string{}
			}
			meta[col.name] = v
		}
	}
	if rc.to == "" {
		return rc, "to is empty: the number to call, in E.164 format, e.g. " + exampleNumber, false
	}
	if meta != nil {
		rc.metadata, _ = json.Marshal(meta)
	}
	return rc, "", false
}

// readCSV streams a CSV upload row by row into u.
func (u *upload) readCSV(r io.Reader) *apiError {
	rd := csv.NewReader(r)
	rd.FieldsPerRecord = -1 // a short row is fine (trailing empty cells), a long one is reported
	rd.ReuseRecord = true
	header, err := rd.Read()
	if err == io.EOF {
		return &apiError{code: http.StatusUnprocessableEntity, reason: reasonInvalidField, message: "the CSV is empty: its first row names the columns, e.g. to,contact_id,firstName",
			fields: []FieldError{{Field: "header", Message: "missing"}}}
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return &apiError{code: http.StatusUnprocessableEntity, reason: reasonInvalidField, message: "the header row is not valid CSV: " + err.Error(),
				fields: []FieldError{{Field: "header", Message: "is not valid CSV: " + err.Error()}}}
		}
		return bodyError(err)
	}
	p, ferrs := parseContactsHeader(header, u.h.lim)
	if ferrs != nil {
		e := invalidFields(ferrs)
		e.message = "the header row is invalid; nothing was imported: " + e.message
		return e
	}
	for {
		fields, err := rd.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return bodyError(err)
			}
			// The reader goes on at the next line; the row is reported.
			u.reject(pe.StartLine, "", "", "not valid CSV: "+pe.Err.Error())
			continue
		}
		row, _ := rd.FieldPos(0)
		rc, reason, skip := p.contact(fields)
		if skip {
			continue
		}
		if reason != "" {
			u.reject(row, rc.contactID, rc.to, reason)
			continue
		}
		u.add(row, rc)
		if u.err != nil {
			return u.err
		}
	}
}
