package callrecords

// The query builders, for the plan test in package callrecords_test.
var (
	ListQuery   = listQuery
	ExportQuery = exportQuery
)

const CallColumns = callColumns
