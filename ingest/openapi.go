package ingest

import (
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

// OpenAPI is the OpenAPI 3.1 document of the whole API, served at
// GET /openapi.json. The contract test (openapi_test.go) validates real
// answers of every route against it, so it cannot drift from the code.
//
//go:embed openapi.json
var OpenAPI []byte

func serveOpenAPI(c *gin.Context) {
	c.Header("Cache-Control", "public, max-age=300")
	c.Data(http.StatusOK, "application/json; charset=utf-8", OpenAPI)
}
