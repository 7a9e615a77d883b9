package callrecords

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dialstream/dialstream/schemas"
)

// The campaign reads, for ingest's campaign routes. Each is scoped by
// workspace: another workspace's campaign is not found, and its contacts
// are not there. What they return is the scheduler's state as it wrote
// it, counters included (the scheduler derives them from its contacts;
// counting rows here would disagree with it while the recorder is
// behind, and cost a scan of a million contacts per read).

// CampaignKey orders campaigns: created_at, then campaign id. GET
// /v1/api/campaigns lists newest first; the cursor is the key of a page's
// last campaign.
type CampaignKey struct {
	CreatedAt  time.Time
	CampaignID string
}

// Campaign returns workspace ws's campaign; false when there is none in
// that workspace (missing and foreign look alike).
func (s *Store) Campaign(ctx context.Context, ws, campaignID string) (*schemas.CampaignState, bool, error) {
	var data []byte
	err := s.db.QueryRowContext(ctx, `SELECT state FROM campaigns WHERE campaign_id = $1 AND workspace_id = $2`,
		text(campaignID), text(ws)).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("callrecords: get campaign %s: %w", campaignID, err)
	}
	var st schemas.CampaignState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, false, fmt.Errorf("callrecords: stored state of campaign %s: %w", campaignID, err)
	}
	return &st, true, nil
}

// Campaigns returns up to limit of workspace ws's campaigns in status
// ("": any), newest first, and the key of the last one when more follow
// (nil at the end). A campaign's key never changes, so paging by
// "strictly older than the last key" neither repeats nor skips one.
func (s *Store) Campaigns(ctx context.Context, ws string, status schemas.CampaignStatus, after *CampaignKey, limit int) ([]schemas.CampaignState, *CampaignKey, error) {
	if limit < 1 {
		return nil, nil, fmt.Errorf("callrecords: list campaigns: limit must be >= 1, got %d", limit)
	}
	q, args := campaignsQuery(ws, status, after, limit+1)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("callrecords: list campaigns of workspace %s: %w", ws, err)
	}
	defer rows.Close()
	var (
		out  []schemas.CampaignState
		keys []CampaignKey
	)
	for rows.Next() {
		var (
			k    CampaignKey
			at   int64
			data []byte
			st   schemas.CampaignState
		)
		if err := rows.Scan(&at, &k.CampaignID, &data); err != nil {
			return nil, nil, fmt.Errorf("callrecords: list campaigns of workspace %s: %w", ws, err)
		}
		if err := json.Unmarshal(data, &st); err != nil {
			return nil, nil, fmt.Errorf("callrecords: stored state of campaign %s: %w", k.CampaignID, err)
		}
		k.CreatedAt = time.Unix(0, at).UTC()
		out, keys = append(out, st), append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("callrecords: list campaigns of workspace %s: %w", ws, err)
	}
	if len(out) > limit {
		return out[:limit], &keys[limit-1], nil
	}
	return out, nil, nil
}

// campaignsQuery walks campaigns_list backwards, or campaigns_by_status
// for one status.
func campaignsQuery(ws string, status schemas.CampaignStatus, after *CampaignKey, limit int) (string, []any) {
	var b strings.Builder
	args := []any{text(ws)}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	b.WriteString(`SELECT created_at, campaign_id, state FROM campaigns WHERE workspace_id = $1`)
	if status != "" {
		b.WriteString(` AND status = ` + arg(text(string(status))))
	}
	if after != nil {
		at := arg(after.CreatedAt.UnixNano())
		b.WriteString(` AND created_at <= ` + at + ` AND (created_at < ` + at + ` OR campaign_id < ` + arg(text(after.CampaignID)) + `)`)
	}
	b.WriteString(` ORDER BY created_at DESC, campaign_id DESC LIMIT ` + arg(limit))
	return b.String(), args
}

// CampaignContacts returns up to limit of the contacts of workspace ws's
// campaign in status ("": any), ordered by contact id, after the contact
// id `after` ("": from the first), and the cursor of the next page ("" at
// the end). Contact ids order by the database's collation; the cursor is
// compared in the same one, so pages neither repeat nor skip a contact.
func (s *Store) CampaignContacts(ctx context.Context, ws, campaignID string, status schemas.ContactStatus, after string, limit int) ([]schemas.ContactState, string, error) {
	if limit < 1 {
		return nil, "", fmt.Errorf("callrecords: list contacts: limit must be >= 1, got %d", limit)
	}
	q, args := contactsQuery(ws, campaignID, status, after, limit+1)
	var out []schemas.ContactState
	err := s.queryContacts(ctx, q, args, func(st *schemas.ContactState) error {
		out = append(out, *st)
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("callrecords: list contacts of campaign %s: %w", campaignID, err)
	}
	if len(out) > limit {
		out = out[:limit]
		return out, out[limit-1].Contact.ContactID, nil
	}
	return out, "", nil
}

// contactsQuery walks the primary key, or campaign_contacts_by_status for
// one status. The workspace is checked on the row: a campaign's contacts
// all share its workspace, so no row is read for nothing.
func contactsQuery(ws, campaignID string, status schemas.ContactStatus, after string, limit int) (string, []any) {
	var b strings.Builder
	args := []any{text(campaignID), text(ws)}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	b.WriteString(`SELECT state FROM campaign_contacts WHERE campaign_id = $1 AND workspace_id = $2`)
	if status != "" {
		b.WriteString(` AND status = ` + arg(text(string(status))))
	}
	if after != "" {
		b.WriteString(` AND contact_id > ` + arg(text(after)))
	}
	b.WriteString(` ORDER BY contact_id LIMIT ` + arg(limit))
	return b.String(), args
}

// ExportCampaignContacts calls fn with each contact of workspace ws's
// campaign, ordered by CSV row then contact id, reading ExportBatch
// contacts per query (each a snapshot of its own: an export of a million
// contacts holds no transaction open while the recorder writes). A
// contact's place in that order never changes, so none is skipped or
// repeated; each comes as it was when its batch was read. It stops at fn's
// first error and returns it.
func (s *Store) ExportCampaignContacts(ctx context.Context, ws, campaignID string, fn func(*schemas.ContactState) error) error {
	var (
		afterRow int
		afterID  string
	)
	for {
		q, args := exportContactsQuery(ws, campaignID, afterRow, afterID)
		n := 0
		var fnErr error
		err := s.queryContacts(ctx, q, args, func(st *schemas.ContactState) error {
			n++
			afterRow, afterID = st.Contact.Row, st.Contact.ContactID
			if fnErr = fn(st); fnErr != nil {
				return fnErr
			}
			return nil
		})
		if fnErr != nil {
			return fnErr
		}
		if err != nil {
			return fmt.Errorf("callrecords: export contacts of campaign %s: %w", campaignID, err)
		}
		if n < ExportBatch {
			return nil
		}
	}
}

// exportContactsQuery selects the next ExportBatch contacts after (row,
// id) on campaign_contacts_by_row; id "" starts from the first.
func exportContactsQuery(ws, campaignID string, row int, id string) (string, []any) {
	q := `SELECT state FROM campaign_contacts WHERE campaign_id = $1 AND workspace_id = $2`
	args := []any{text(campaignID), text(ws)}
	if id != "" {
		q += ` AND csv_row >= $3 AND (csv_row > $3 OR contact_id > $4)`
		args = append(args, row, text(id))
	}
	args = append(args, ExportBatch)
	return q + ` ORDER BY csv_row, contact_id LIMIT $` + strconv.Itoa(len(args)), args
}

// queryContacts runs q and calls fn with each contact state it returns,
// decoded. The rows are read to the end before the next query: fn may be
// slow (an HTTP client), and an open result holds a connection.
func (s *Store) queryContacts(ctx context.Context, q string, args []any, fn func(*schemas.ContactState) error) error {
	var states [][]byte
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var data []byte
			if err := rows.Scan(&data); err != nil {
				return err
			}
			states = append(states, data)
		}
		return rows.Err()
	})
	if err != nil {
		return err
	}
	for _, data := range states {
		var st schemas.ContactState
		if err := json.Unmarshal(data, &st); err != nil {
			return fmt.Errorf("stored contact state: %w", err)
		}
		if err := fn(&st); err != nil {
			return err
		}
	}
	return nil
}

// numbersBatch bounds the numbers of one CampaignNumbers query (both
// engines bound a statement's parameters: SQLite at 32766).
const numbersBatch = 500

// CampaignNumbers returns which of numbers workspace ws's campaign has
// already, each with the contact id that has it (the first by contact id,
// should two). An upload checks its rows against it, a chunk at a time.
func (s *Store) CampaignNumbers(ctx context.Context, ws, campaignID string, numbers []string) (map[string]string, error) {
	out := map[string]string{}
	for start := 0; start < len(numbers); start += numbersBatch {
		chunk := numbers[start:min(start+numbersBatch, len(numbers))]
		in, args := inList(chunk)
		for i := range args {
			args[i] = text(chunk[i])
		}
		n := len(args)
		args = append(args, text(campaignID), text(ws))
		rows, err := s.db.QueryContext(ctx, `SELECT number, contact_id FROM campaign_contacts
			WHERE campaign_id = $`+strconv.Itoa(n+1)+` AND workspace_id = $`+strconv.Itoa(n+2)+` AND number IN (`+in+`)
			ORDER BY number, contact_id`, args...)
		if err != nil {
			return nil, fmt.Errorf("callrecords: numbers of campaign %s: %w", campaignID, err)
		}
		for rows.Next() {
			var number, id string
			if err := rows.Scan(&number, &id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("callrecords: numbers of campaign %s: %w", campaignID, err)
			}
			if _, seen := out[number]; !seen {
				out[number] = id
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("callrecords: numbers of campaign %s: %w", campaignID, err)
		}
	}
	return out, nil
}
