package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/internal/callrecords/dbtest"
	"github.com/dialstream/dialstream/internal/envconfig"
	"github.com/dialstream/dialstream/schemas"
)

// `dialstream records purge --workspace ws_a` deletes ws_a's calls and
// nothing of ws_b's, and says how many it deleted.
func TestRecordsPurge(t *testing.T) {
	ctx := context.Background()
	url := dbtest.URL(t, callrecords.SQLite)
	st, err := callrecords.Open(ctx, url, callrecords.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC()
	put := func(ws string, n int) {
		for i := range n {
			r := schemas.CallRequested{CallID: fmt.Sprintf("%s%020x", map[string]string{"ws_a": "aaaa", "ws_b": "bbbb"}[ws], i),
				WorkspaceID: ws, To: "+15550100001", CallAgentID: "agent", RequestedAt: now}
			data, _ := json.Marshal(r)
			if _, err := st.PutRequest(ctx, &r, data, 0, int64(i), false); err != nil {
				t.Fatal(err)
			}
		}
	}
	put("ws_a", 3)
	put("ws_b", 2)

	var out bytes.Buffer
	err = recordsMain(ctx, []string{"purge", "--workspace", "ws_a"}, envconfig.FromMap(map[string]string{"DATABASE_URL": url}), &out)
	if err != nil || out.String() != "purged workspace ws_a: 3 calls deleted\n" {
		t.Fatalf("%q %v", out.String(), err)
	}
	for ws, want := range map[string]int{"ws_a": 0, "ws_b": 2} {
		calls, _, err := st.List(ctx, ws, callrecords.Filter{}, 10)
		if err != nil || len(calls) != want {
			t.Fatalf("%s: %d calls left, want %d (%v)", ws, len(calls), want, err)
		}
	}
}

func TestRecordsUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "usage: dialstream records purge --workspace ID"},
		{[]string{"purge"}, nil, "usage: dialstream records purge --workspace ID"},
		{[]string{"purge", "--workspace", "ws_a", "extra"}, nil, "usage: dialstream records purge --workspace ID"},
		{[]string{"purge", "--workspace", "ws_a"}, nil, "DATABASE_URL: required"},
		{[]string{"purge", "--workspace", "ws_a"}, map[string]string{"DATABASE_URL": "mysql://x"}, "DATABASE_URL: callrecords: DATABASE_URL must start with"},
	} {
		err := recordsMain(context.Background(), tc.args, envconfig.FromMap(tc.env), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
