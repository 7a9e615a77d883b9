package ingest

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/dialstream/dialstream/internal/compliance"
	"github.com/dialstream/dialstream/internal/obs"
)

// checkCompliance refuses a call that the workspace's compliance policy
// would refuse at dial time anyway, so the client hears it now (422 naming
// the rule) instead of in a webhook minutes later. It reserves nothing: the
// dialer checks again (with attempt caps) right before it dials. While the
// do-not-call list is loading it answers 503 with Retry-After: fail closed,
// nothing is written.
// class, when not nil, is to already classified (parsePhone).
func (h *handler) checkCompliance(ctx context.Context, ws, agent, to string, class *compliance.Number) *apiError {
	var v compliance.Verdict
	var err error
	if class != nil {
		v, err = h.comp.CheckClassified(ws, agent, *class, h.now())
	} else {
		v, err = h.comp.Check(ws, agent, to, h.now())
	}
	switch {
	case errors.Is(err, compliance.ErrNotReady):
		return &apiError{code: http.StatusServiceUnavailable, reason: reasonComplianceLoading, retryAfter: 1,
			message: "the do-not-call list is still loading; retry shortly"}
	case err != nil:
		h.log.ErrorContext(ctx, "compliance check", "workspace_id", ws, "agent_id", agent, "error", err)
		return &apiError{code: http.StatusInternalServerError, reason: reasonInternal, message: "internal error"}
	case v.Allowed():
		return nil
	}
	reason := v.Reason
	if w, ok := h.reg.Workspace(ws); ok && w.MaskPhoneNumbers {
		reason = obs.MaskPhone(to) + ": refused by rule " + string(v.Outcome)
	}
	e := &apiError{code: http.StatusUnprocessableEntity, reason: reasonComplianceRefused, rule: string(v.Outcome),
		message: "call refused by compliance rule " + string(v.Outcome) + ": " + reason,
		fields:  []FieldError{{Field: "to", Message: string(v.Outcome)}}}
	if !v.NextAllowedAt.IsZero() {
		e.nextAt = v.NextAllowedAt.UTC().Format(time.RFC3339)
	}
	return e
}
