package scheduler

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/dialstream/dialstream/schemas"
)

// TestFigureMemory measures the heap the campaign model (machine.go, due.go)
// holds for 1,000,000 contacts across 10 campaigns, each contact with two
// dynamic variables and a small metadata object, as a CSV upload makes
// them. It is a figure, not a check: SCHEDULER_FIGURES=1 runs it, and
// docs/architecture.md ("Campaigns and scheduled calls") has the result.
func TestFigureMemory(t *testing.T) {
	if os.Getenv("SCHEDULER_FIGURES") == "" {
		t.Skip("set SCHEDULER_FIGURES=1 to measure")
	}
	const campaigns, perCampaign = 10, 100_000
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	all := make([]*campaign, 0, campaigns)
	for ci := range campaigns {
		cmd := testCampaignCmd(true)
		cmd.CampaignID = fmt.Sprintf("%024x", ci+1)
		c, _ := applyCreated(nil, cmd)
		for base := 0; base < perCampaign; base += schemas.MaxContactsPerRecord {
			ks := make([]schemas.Contact, 0, schemas.MaxContactsPerRecord)
			for i := base; i < base+schemas.MaxContactsPerRecord; i++ {
				ks = append(ks, schemas.Contact{
					ContactID: fmt.Sprintf("crm-%07d", i), To: fmt.Sprintf("+1202%07d", i), Row: i + 2,
					DynamicVariables: map[string]string{"firstName": "Ada", "lastName": fmt.Sprintf("Lovelace%d", i)},
					Metadata:         []byte(fmt.Sprintf(`{"crm_id":%d}`, i)),
				})
			}
			cc := contactsCmd(t0, ks...)
			cc.CampaignID = cmd.CampaignID
			c.applyContacts(cc)
		}
		all = append(all, c)
	}
	took := time.Since(start)
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
	t.Logf("%d contacts in %d campaigns: heap %.0f MiB (%.0f bytes per contact), applied in %s (%.0f contacts/s)",
		campaigns*perCampaign, campaigns, heap, heap*(1<<20)/float64(campaigns*perCampaign), took.Round(time.Millisecond),
		float64(campaigns*perCampaign)/took.Seconds())
	runtime.KeepAlive(all)
}
