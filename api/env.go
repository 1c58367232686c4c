package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/picloud/picloud/catalog"
)

// EnvStore is what the API needs of functions' configuration values and
// secrets: *catalog.Catalog.
type EnvStore interface {
	SetEnv(ctx context.Context, function, name, value string, secret bool) error
	DeleteEnv(ctx context.Context, function, name string) error
	GetEnv(ctx context.Context, function string) (catalog.Env, error)
}

// EnvBody is a function's configuration; secrets are listed by name only.
type EnvBody struct {
	Env     map[string]string `json:"env" example:"{\"API_URL\": \"https://api.example.com\"}" doc:"Configuration values, env.NAME in the script."`
	Secrets []string          `json:"secrets" example:"[\"API_TOKEN\"]" doc:"Names of the secrets, secrets.NAME in the script; their values are never returned."`
}

type setEnvInput struct {
	Name string `path:"name" pattern:"^[a-z][a-z0-9_-]{0,62}$" maxLength:"63" doc:"Function name."`
	Key  string `path:"key" pattern:"^[A-Za-z_][A-Za-z0-9_]{0,127}$" doc:"Name of the value."`
	Body struct {
		Value string `json:"value" maxLength:"65536" example:"https://api.example.com" doc:"The value."`
	}
}

type envNameKey struct {
	Name string `path:"name" pattern:"^[a-z][a-z0-9_-]{0,62}$" maxLength:"63" doc:"Function name."`
	Key  string `path:"key" pattern:"^[A-Za-z_][A-Za-z0-9_]{0,127}$" doc:"Name of the value."`
}

type envOutput struct {
	Body EnvBody
}

func (s *Server) registerEnv() {
	tags := []string{"functions"}
	register(s.api, huma.Operation{
		OperationID: "get-function-env",
		Method:      http.MethodGet,
		Path:        "/v1/functions/{name}/env",
		Summary:     "Get a function's configuration",
		Description: "Its configuration values, and the names (never the values) of its secrets.",
		Tags:        tags,
		Errors:      []int{http.StatusNotFound},
	}, s.getEnv)
	for _, kind := range []struct {
		path, id, summary, what string
		secret                  bool
	}{
		{"env", "env", "a configuration value", "a configuration value (env.KEY in the script)", false},
		{"secrets", "secret", "a secret", "a secret (secrets.KEY in the script; write-only: no endpoint returns it, and its value is masked in the invocation's logs and error)", true},
	} {
		secret := kind.secret
		register(s.api, huma.Operation{
			OperationID:   "set-function-" + kind.id,
			Method:        http.MethodPut,
			Path:          "/v1/functions/{name}/" + kind.path + "/{key}",
			Summary:       "Set " + kind.summary,
			Description:   "Sets " + kind.what + ". It reaches invocations that start afterwards.",
			Tags:          tags,
			DefaultStatus: http.StatusNoContent,
			Errors:        []int{http.StatusNotFound, http.StatusUnprocessableEntity},
		}, func(ctx context.Context, in *setEnvInput) (*struct{}, error) {
			return nil, s.setEnv(ctx, in.Name, in.Key, in.Body.Value, secret)
		})
		register(s.api, huma.Operation{
			OperationID:   "delete-function-" + kind.id,
			Method:        http.MethodDelete,
			Path:          "/v1/functions/{name}/" + kind.path + "/{key}",
			Summary:       "Delete " + kind.summary,
			Description:   "Deletes " + kind.what + ".",
			Tags:          tags,
			DefaultStatus: http.StatusNoContent,
			Errors:        []int{http.StatusNotFound},
		}, func(ctx context.Context, in *envNameKey) (*struct{}, error) {
			err := s.config.Env.DeleteEnv(ctx, in.Name, in.Key)
			if errors.Is(err, catalog.ErrEnvNotFound) {
				return nil, huma.Error404NotFound(fmt.Sprintf("function %q has no %s %q", in.Name, kind.id, in.Key))
			}
			if err != nil {
				return nil, s.internal(ctx, err)
			}
			return nil, nil
		})
	}
}

func (s *Server) getEnv(ctx context.Context, in *functionNameParam) (*envOutput, error) {
	env, err := s.config.Env.GetEnv(ctx, in.Name)
	if errors.Is(err, catalog.ErrFunctionNotFound) {
		return nil, huma.Error404NotFound(fmt.Sprintf("function %q does not exist", in.Name))
	}
	if err != nil {
		return nil, s.internal(ctx, err)
	}
	return &envOutput{Body: EnvBody{Env: env.Values, Secrets: env.Secrets}}, nil
}

func (s *Server) setEnv(ctx context.Context, function, key, value string, secret bool) error {
	err := s.config.Env.SetEnv(ctx, function, key, value, secret)
	if errors.Is(err, catalog.ErrFunctionNotFound) {
		return huma.Error404NotFound(fmt.Sprintf("function %q does not exist", function))
	}
	if optErr := (*catalog.InvalidOptionsError)(nil); errors.As(err, &optErr) {
		return huma.Error422UnprocessableEntity(optErr.Error())
	}
	if err != nil {
		return s.internal(ctx, err)
	}
	return nil
}
