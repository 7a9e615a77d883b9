package schemas

import "time"

// The do-not-call list: schemas.TopicSuppressions holds one Suppression per
// workspace and number (SuppressionKey); a tombstone removes it.
const (
	SchemaSuppression = "suppression.v1"
	TypeSuppression   = "dialstream.suppression.v1"
)

func init() { RegisterType(TypeSuppression, SchemaSuppression) }

// SuppressionReason says why a number is on a do-not-call list. The
// vocabulary is closed (the schema's enum), so it can label metrics.
type SuppressionReason string

const (
	// ReasonOptOut: the callee asked not to be called, to an agent or to the
	// operator.
	ReasonOptOut SuppressionReason = "opt_out"
	// ReasonComplaint: the callee complained, through any channel.
	ReasonComplaint SuppressionReason = "complaint"
	// ReasonDNCRegistry: the number is on a national do-not-call registry
	// the operator imported.
	ReasonDNCRegistry SuppressionReason = "dnc_registry"
	// ReasonWrongNumber: the number does not reach the intended person.
	ReasonWrongNumber SuppressionReason = "wrong_number"
	// ReasonManual: the operator listed the number without one of the
	// causes above.
	ReasonManual SuppressionReason = "manual"
)

// SuppressionReasons lists the whole vocabulary, in the schema's order.
var SuppressionReasons = []SuppressionReason{ReasonOptOut, ReasonComplaint, ReasonDNCRegistry, ReasonWrongNumber, ReasonManual}

// SuppressionSource says how a number came onto the list.
type SuppressionSource string

const (
	SourceAPI    SuppressionSource = "api"    // PUT /v1/api/suppressions/{number}
	SourceImport SuppressionSource = "import" // a CSV import
	SourceAgent  SuppressionSource = "agent"  // an agent reported opt_out on call CallID
)

// Suppression is the data of a dialstream.suppression.v1 record.
type Suppression struct {
	WorkspaceID string            `json:"workspace_id"`
	Number      string            `json:"number"`
	Reason      SuppressionReason `json:"reason"`
	Source      SuppressionSource `json:"source"`
	AddedAt     time.Time         `json:"added_at"`
	CallID      string            `json:"call_id,omitempty"`
	Note        string            `json:"note,omitempty"`
}

// SuppressionKey is the record key of a number's entry on
// TopicSuppressions. The workspace is part of it: one workspace's list never
// touches another's, and compaction keeps one record per workspace and
// number.
func SuppressionKey(workspaceID, number string) string { return workspaceID + " " + number }
