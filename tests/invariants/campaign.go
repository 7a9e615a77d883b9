package invariants

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// The campaign routes as a user reads them (README, "Campaigns"), for the
// tests that run a campaign and judge it by what GET shows: the container
// suite's scheduler test and the quickstart's campaign end to end.

// CampaignView is GET /v1/api/campaigns/:id's campaign, the fields a check
// reads.
type CampaignView struct {
	Status   string `json:"status"`
	Counters struct {
		Contacts  int            `json:"contacts"`
		Attempts  int            `json:"attempts"`
		ByState   map[string]int `json:"by_state"`
		ByOutcome map[string]int `json:"by_outcome"`
	} `json:"counters"`
}

// ContactView is one contact of GET /v1/api/campaigns/:id/contacts, with
// its attempts in order.
type ContactView struct {
	ContactID string `json:"contact_id"`
	To        string `json:"to"`
	Status    string `json:"status"`
	Outcome   string `json:"outcome"`
	Attempts  []struct {
		Attempt    int    `json:"attempt"`
		CallID     string `json:"call_id"`
		Outcome    string `json:"outcome"`
		AnsweredBy string `json:"answered_by"`
	} `json:"attempts"`
}

// Do sends one request to ingest's API (path under /v1/api) as c's
// workspace and decodes a 2xx answer's JSON into out (nil: ignored); any
// other answer is an error quoting it.
func (c Client) Do(ctx context.Context, method, path, contentType, body string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.IngestURL+"/v1/api"+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+c.APIKey)
	req.Header.Set("x-workspace-id", c.WorkspaceID)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s %.500s", method, path, resp.Status, b)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(out); err != nil {
		return fmt.Errorf("%s %s: %w in %.300s", method, path, err, b)
	}
	return nil
}

// Campaign reads GET /v1/api/campaigns/:id.
func (c Client) Campaign(ctx context.Context, id string) (CampaignView, error) {
	var env struct {
		Campaign CampaignView `json:"campaign"`
	}
	err := c.Do(ctx, http.MethodGet, "/campaigns/"+id, "", "", &env)
	return env.Campaign, err
}

// CampaignContacts pages through GET /v1/api/campaigns/:id/contacts.
func (c Client) CampaignContacts(ctx context.Context, id string) ([]ContactView, error) {
	var all []ContactView
	cursor := ""
	for range 1000 {
		path := "/campaigns/" + id + "/contacts?limit=50"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		var page struct {
			Contacts   []ContactView `json:"contacts"`
			NextCursor string        `json:"next_cursor"`
		}
		if err := c.Do(ctx, http.MethodGet, path, "", "", &page); err != nil {
			return nil, err
		}
		all = append(all, page.Contacts...)
		if page.NextCursor == "" {
			return all, nil
		}
		cursor = page.NextCursor
	}
	return nil, fmt.Errorf("GET /campaigns/%s/contacts did not end after 1000 pages", id)
}
