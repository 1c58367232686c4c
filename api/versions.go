package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/picloud/picloud/catalog"
)

// FunctionVersionBody is one source a function had.
type FunctionVersionBody struct {
	Version     int       `json:"version" example:"3"`
	SHA256      string    `json:"sha256" doc:"SHA-256 of the source, hex-encoded."`
	SourceBytes int       `json:"source_bytes" example:"182" doc:"Length of the source in bytes."`
	Source      string    `json:"source,omitempty" example:"function handle(req)\n  return \"Hello!\"\nend\n" doc:"Lua source; omitted in listings."`
	CreatedAt   time.Time `json:"created_at" doc:"When this version was deployed."`
}

func functionVersionBody(v catalog.FunctionVersion) FunctionVersionBody {
	return FunctionVersionBody{Version: v.Version, SHA256: v.SHA256, SourceBytes: v.SourceBytes, Source: v.Source, CreatedAt: v.CreatedAt}
}

type listVersionsOutput struct {
	Body struct {
		Versions []FunctionVersionBody `json:"versions" doc:"Newest first; the first is the current one."`
	}
}

type functionVersionInput struct {
	Name    string `path:"name" pattern:"^[a-z][a-z0-9_-]{0,62}$" maxLength:"63" example:"hello" doc:"Function name."`
	Version int    `path:"version" minimum:"1" maximum:"2147483647" example:"2" doc:"Version number, as in the function's version field."`
}

type functionVersionOutput struct {
	Body FunctionVersionBody
}

func (s *Server) registerVersions() {
	tags := []string{"functions"}
	register(s.api, huma.Operation{
		OperationID: "list-function-versions",
		Method:      http.MethodGet,
		Path:        "/v1/functions/{name}/versions",
		Summary:     "List a function's versions",
		Description: "Every source the function has had, newest first, without the sources. A PUT that changes the source adds a version; " +
			"deleting the function deletes its versions.",
		Tags:   tags,
		Errors: []int{http.StatusNotFound},
	}, s.listVersions)
	register(s.api, huma.Operation{
		OperationID: "get-function-version",
		Method:      http.MethodGet,
		Path:        "/v1/functions/{name}/versions/{version}",
		Summary:     "Get a function version",
		Description: "One earlier (or the current) source of the function. To roll back, PUT the function with this source.",
		Tags:        tags,
		Errors:      []int{http.StatusNotFound},
	}, s.getVersion)
}

func (s *Server) listVersions(ctx context.Context, in *functionNameParam) (*listVersionsOutput, error) {
	versions, err := s.config.Functions.ListFunctionVersions(ctx, in.Name)
	if errors.Is(err, catalog.ErrFunctionNotFound) {
		return nil, huma.Error404NotFound(fmt.Sprintf("function %q does not exist", in.Name))
	}
	if err != nil {
		return nil, s.internal(ctx, err)
	}
	out := &listVersionsOutput{}
	out.Body.Versions = make([]FunctionVersionBody, len(versions))
	for i, v := range versions {
		out.Body.Versions[i] = functionVersionBody(v)
	}
	return out, nil
}

func (s *Server) getVersion(ctx context.Context, in *functionVersionInput) (*functionVersionOutput, error) {
	v, err := s.config.Functions.GetFunctionVersion(ctx, in.Name, in.Version)
	if errors.Is(err, catalog.ErrFunctionNotFound) {
		return nil, huma.Error404NotFound(fmt.Sprintf("function %q does not exist", in.Name))
	}
	if errors.Is(err, catalog.ErrVersionNotFound) {
		return nil, huma.Error404NotFound(fmt.Sprintf("function %q has no version %d", in.Name, in.Version))
	}
	if err != nil {
		return nil, s.internal(ctx, err)
	}
	return &functionVersionOutput{Body: functionVersionBody(v)}, nil
}
