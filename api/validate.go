package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/picloud/picloud/catalog"
)

func (s *Server) registerValidate() {
	register(s.api, huma.Operation{
		OperationID: "validate-function",
		Method:      http.MethodPost,
		Path:        "/v1/functions/{name}/validate",
		Summary:     "Check a function without storing it",
		Description: "Takes what PUT /v1/functions/{name} takes and runs its checks (the source compiles and names handle, the options are valid) without storing anything. " +
			"A syntax error or a missing handle is the same 422; otherwise the answer is the function as the PUT would store it, with the version it would get. " +
			"Editors call it as the user types.",
		Tags:          []string{"functions"},
		DefaultStatus: http.StatusOK,
		Errors:        []int{http.StatusUnprocessableEntity},
		MaxBodyBytes:  2*MaxSourceBytes + 64<<10,
	}, s.validateFunction)
}

func (s *Server) validateFunction(ctx context.Context, in *putFunctionInput) (*functionOutput, error) {
	opts := in.Body.options()
	if err := s.config.Functions.CheckFunction(in.Name, in.Body.Source, opts); err != nil {
		return nil, s.putError(ctx, err)
	}
	sum := sha256.Sum256([]byte(in.Body.Source))
	now := time.Now()
	fn := catalog.Function{Name: in.Name, Version: 1, Source: in.Body.Source, SHA256: hex.EncodeToString(sum[:]), Options: opts, CreatedAt: now, UpdatedAt: now}
	// PutFunction's defaults, so that the answer reads as a stored function.
	if fn.Options.MaxAttempts == 0 {
		fn.Options.MaxAttempts = 1
	}
	if fn.Options.Auth == "" {
		fn.Options.Auth = catalog.AuthPublic
	}
	current, err := s.config.Functions.GetFunction(ctx, in.Name)
	switch {
	case errors.Is(err, catalog.ErrFunctionNotFound):
	case err != nil:
		return nil, s.internal(ctx, err)
	default:
		fn.Version, fn.CreatedAt = current.Version, current.CreatedAt
		if current.SHA256 != fn.SHA256 {
			fn.Version++
		}
	}
	return &functionOutput{Status: http.StatusOK, Body: functionBody(fn)}, nil
}
