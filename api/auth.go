package api

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/picloud/picloud/keys"
)

// securityScheme names the API key scheme in the OpenAPI document.
const securityScheme = "apiKey"

// scopeExtension carries an operation's required scope in the OpenAPI
// document, where generated clients and readers see it; the http bearer
// scheme of OpenAPI 3.0 cannot list scopes itself.
const scopeExtension = "x-picloud-scope"

// access is who may call an operation.
type access string

const (
	accessPublic access = "public" // health checks
	accessInvoke access = access(keys.ScopeInvoke)
	accessAdmin  access = access(keys.ScopeAdmin)
)

// invokeOperations are what an invoke key may do besides /fn: call
// functions and read invocations. Everything else under /v1 needs admin.
var invokeOperations = map[string]bool{
	"invoke-function":          true,
	"invoke-function-batch":    true,
	"get-invocation":           true,
	"list-invocations":         true,
	"stream-events":            true,
	"stream-function-events":   true,
	"stream-invocation-events": true,
}

func describeSecurity(hc *huma.Config) {
	hc.Security = []map[string][]string{{securityScheme: {}}}
	hc.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		securityScheme: {
			Type:   "http",
			Scheme: "bearer",
			Description: "An API key, sent as `Authorization: Bearer <key>`. Keys start with `" + keys.Prefix + "` and have a scope: " +
				"`admin` may do everything, `invoke` may call functions and read invocations. Create the first one with " +
				"`picloud keys create --scope admin` against the database. Each operation names the scope it needs in " + scopeExtension + ".",
		},
	}
}

// secureOperations sets every registered operation's security, scope and
// 401/403 responses; it runs after registration so that no operation can be
// added without them. The middleware reads the same operations.
func (s *Server) secureOperations() {
	for _, item := range s.api.OpenAPI().Paths {
		for _, op := range []*huma.Operation{item.Get, item.Put, item.Post, item.Delete, item.Patch} {
			if op == nil || strings.HasPrefix(op.Path, "/fn/") {
				continue
			}
			if op.Metadata["access"] == accessPublic {
				// An empty requirement: no key, said explicitly.
				op.Security = []map[string][]string{{}}
				continue
			}
			need := accessAdmin
			if invokeOperations[op.OperationID] {
				need = accessInvoke
			}
			if op.Metadata == nil {
				op.Metadata = map[string]any{}
			}
			op.Metadata["access"] = need
			op.Security = []map[string][]string{{securityScheme: {}}}
			if op.Extensions == nil {
				op.Extensions = map[string]any{}
			}
			op.Extensions[scopeExtension] = string(need)
			op.Description += fmt.Sprintf(" Needs an API key with the %s scope", need)
			if need == accessInvoke {
				op.Description += " (or admin)"
			}
			op.Description += "."
			addAuthResponses(op)
		}
	}
}

func addAuthResponses(op *huma.Operation) {
	var problem *huma.Response
	for status, res := range op.Responses {
		if (status == "default" || status[0] == '4') && res.Content["application/problem+json"] != nil {
			problem = res
			break
		}
	}
	if problem == nil {
		panic("operation " + op.OperationID + " documents no problem+json response to copy")
	}
	unauthorized := *problem
	unauthorized.Description = "No API key, or one that is unknown or revoked (problem+json)."
	unauthorized.Headers = maps.Clone(problem.Headers)
	if unauthorized.Headers == nil {
		unauthorized.Headers = map[string]*huma.Param{}
	}
	unauthorized.Headers["WWW-Authenticate"] = &huma.Param{Description: "Bearer", Schema: &huma.Schema{Type: huma.TypeString}}
	forbidden := *problem
	forbidden.Description = "The API key's scope does not allow this operation (problem+json)."
	op.Responses["401"] = &unauthorized
	op.Responses["403"] = &forbidden
}

// authorize is the huma middleware that enforces each operation's access.
// An operation without an access mark needs admin: forgetting to mark one
// must not open it.
func (s *Server) authorize(ctx huma.Context, next func(huma.Context)) {
	need, _ := ctx.Operation().Metadata["access"].(access)
	if need == accessPublic || s.config.DisableAuth {
		next(ctx)
		return
	}
	if need == "" {
		need = accessAdmin
	}
	key, ok := bearerToken(ctx.Header("Authorization"))
	if !ok && ctx.Operation().Metadata["queryToken"] == true {
		// A browser's EventSource cannot send headers.
		key = ctx.Query("access_token")
		ok = key != ""
	}
	if !ok {
		ctx.SetHeader("WWW-Authenticate", `Bearer realm="picloud"`)
		_ = huma.WriteErr(s.api, ctx, http.StatusUnauthorized, "this operation needs an API key: send Authorization: Bearer <key>")
		return
	}
	scope, err := s.config.Keys.Authenticate(ctx.Context(), key)
	if errors.Is(err, keys.ErrUnauthenticated) {
		ctx.SetHeader("WWW-Authenticate", `Bearer realm="picloud", error="invalid_token"`)
		_ = huma.WriteErr(s.api, ctx, http.StatusUnauthorized, "the API key is unknown or revoked")
		return
	}
	if err != nil {
		s.logger.ErrorContext(ctx.Context(), "check API key", "error", err)
		_ = huma.WriteErr(s.api, ctx, http.StatusInternalServerError, "could not check the API key; the server log has the details")
		return
	}
	if !scope.Allows(keys.Scope(need)) {
		_ = huma.WriteErr(s.api, ctx, http.StatusForbidden, fmt.Sprintf("this operation needs a key with the %s scope; this key has %s", need, scope))
		return
	}
	next(ctx)
}

// bearerToken takes the token from an Authorization header value.
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// callerHasKey reports whether an /fn request carries a valid API key of
// any scope. A missing or bad key is not an error here: a public function
// takes anyone, and the database refuses a key-only one.
func (s *Server) callerHasKey(r *http.Request) (bool, error) {
	if s.config.DisableAuth {
		return true, nil
	}
	key, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok || !strings.HasPrefix(key, keys.Prefix) {
		return false, nil
	}
	_, err := s.config.Keys.Authenticate(r.Context(), key)
	if errors.Is(err, keys.ErrUnauthenticated) {
		return false, nil
	}
	return err == nil, err
}
