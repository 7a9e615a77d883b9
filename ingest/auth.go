package ingest

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/dialstream/dialstream/internal/registry"
)

// workspaceKey is where authenticated leaves the caller's workspace in the
// Gin context.
type workspaceKey struct{}

// authenticated is the middleware of every /v1/api route: it answers 401,
// 400 or 403 (authenticate) and stops the request, or leaves the caller's
// workspace for workspaceOf. It runs before anything else a route checks,
// so a request that is not the workspace's learns nothing else about it.
func (h *handler) authenticated(c *gin.Context) {
	ws, aerr := h.authenticate(c)
	if aerr != nil {
		h.fail(c, aerr)
		return
	}
	c.Set(workspaceKey{}, ws)
}

// workspaceOf is the workspace authenticated admitted.
func workspaceOf(c *gin.Context) *registry.Workspace {
	return c.MustGet(workspaceKey{}).(*registry.Workspace)
}

// authenticate checks the API key and that it belongs to x-workspace-id.
func (h *handler) authenticate(c *gin.Context) (*registry.Workspace, *apiError) {
	challenge := func(msg, errCode string) *apiError {
		v := `Bearer realm="dialstream"`
		if errCode != "" {
			v += `, error="` + errCode + `"`
		}
		return &apiError{code: http.StatusUnauthorized, reason: reasonUnauthenticated, message: msg,
			header: http.Header{"Www-Authenticate": {v}}}
	}
	auth := strings.TrimSpace(c.GetHeader("Authorization"))
	if auth == "" {
		return nil, challenge("missing API key: send the header Authorization: Bearer <api key>", "")
	}
	scheme, key, _ := strings.Cut(auth, " ")
	key = strings.TrimSpace(key)
	if !strings.EqualFold(scheme, "Bearer") || key == "" {
		return nil, challenge("the Authorization header must be: Bearer <api key>", "invalid_request")
	}
	ws, ok := h.reg.Authenticate(key)
	if !ok {
		return nil, challenge("invalid API key", "invalid_token")
	}
	wsID := strings.TrimSpace(c.GetHeader("x-workspace-id"))
	if wsID == "" {
		return nil, &apiError{code: http.StatusBadRequest, reason: reasonMalformed,
			message: "missing x-workspace-id header: send the id of the workspace the call belongs to"}
	}
	if wsID != ws.ID {
		return nil, &apiError{code: http.StatusForbidden, reason: reasonForbidden,
			message: "this API key does not belong to the workspace named in x-workspace-id"}
	}
	return ws, nil
}
