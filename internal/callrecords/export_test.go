package callrecords

// The query builders, for the plan test in package callrecords_test.
var (
	ListQuery   = listQuery
	ExportQuery = exportQuery

	CampaignsQuery      = campaignsQuery
	ContactsQuery       = contactsQuery
	ExportContactsQuery = exportContactsQuery
)

const CallColumns = callColumns
