package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"

	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/keys"
	"github.com/picloud/picloud/queue"
)

// responseHeadersOwnedByServer are headers a function may not set: the
// server frames the response itself, and a wrong Content-Length or
// Transfer-Encoding from a script would corrupt it.
var responseHeadersOwnedByServer = map[string]bool{
	"content-length":    true,
	"transfer-encoding": true,
	"connection":        true,
	"keep-alive":        true,
	"upgrade":           true,
	"trailer":           true,
	"x-invocation-id":   true,
}

// ingressMethods are the methods documented for /fn; the handler takes any.
var ingressMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

func (s *Server) registerIngress() {
	s.mux.HandleFunc("/fn/{name}", s.serveFunction)
	s.mux.HandleFunc("/fn/{name}/{rest...}", s.serveFunction)
	s.documentIngress()
}

// serveFunction turns the request into an invocation row, waits for a worker
// to finish it, and answers with the function's response.
func (s *Server) serveFunction(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := r.PathValue("name")
	if !catalog.ValidFunctionName(name) {
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("function %q does not exist", name), nil)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.config.MaxBodyBytes))
	if maxErr := (*http.MaxBytesError)(nil); errors.As(err, &maxErr) {
		writeProblem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", maxErr.Limit), nil)
		return
	}
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "reading the request body: "+err.Error(), nil)
		return
	}
	hasKey, err := s.callerHasKey(r)
	if err != nil {
		s.logger.ErrorContext(ctx, "check API key", "error", err)
		writeProblem(w, http.StatusInternalServerError, "could not check the API key; the server log has the details", nil)
		return
	}
	inv, err := s.config.Invocations.Call(ctx, queue.InvokeParams{
		Function:      name,
		Trigger:       queue.TriggerHTTP,
		Request:       functionRequest(r, body),
		Authenticated: hasKey,
	}, s.config.QueueGrace)
	idHeader := http.Header{"X-Invocation-Id": {strconv.FormatInt(inv.ID, 10)}}
	switch {
	case errors.Is(err, queue.ErrUnauthenticated):
		writeProblem(w, http.StatusUnauthorized, fmt.Sprintf("function %q needs an API key: send Authorization: Bearer <key>", name),
			http.Header{"Www-Authenticate": {`Bearer realm="picloud"`}})
		return
	case errors.Is(err, queue.ErrFunctionNotFound):
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("function %q does not exist", name), nil)
		return
	case ctx.Err() != nil:
		return // the caller left; an enqueued invocation runs on and keeps its row
	case errors.Is(err, queue.ErrNotFinished):
		writeProblem(w, http.StatusGatewayTimeout, fmt.Sprintf("invocation %d has not finished yet; its status is at /v1/invocations/%d", inv.ID, inv.ID), idHeader)
		return
	case err != nil && inv.ID == 0:
		s.logger.ErrorContext(ctx, "invoke", "function", name, "error", err)
		writeProblem(w, http.StatusInternalServerError, "could not enqueue the invocation; the server log has the details", nil)
		return
	case err != nil:
		s.logger.ErrorContext(ctx, "wait for invocation", "invocation", inv.ID, "error", err)
		writeProblem(w, http.StatusInternalServerError, "could not read the invocation's outcome; the server log has the details", idHeader)
		return
	}
	id := inv.ID

	switch inv.Status {
	case queue.StatusSucceeded:
		resp, err := inv.Response()
		if err != nil {
			s.logger.ErrorContext(ctx, "decode response", "invocation", id, "error", err)
			writeProblem(w, http.StatusInternalServerError, "the invocation's response is unreadable", idHeader)
			return
		}
		// The executor allows 200-599 only; this keeps a row from elsewhere
		// (an older version, a hand-written result) from sending an
		// interim 1xx or a status net/http would panic on.
		if resp.Status < 200 || resp.Status > 599 {
			writeProblem(w, http.StatusInternalServerError, fmt.Sprintf("the invocation's response has status %d; a function may answer 200 to 599", resp.Status), idHeader)
			return
		}
		for k, v := range resp.Headers {
			if !responseHeadersOwnedByServer[strings.ToLower(k)] {
				w.Header().Set(k, v)
			}
		}
		w.Header()["X-Invocation-Id"] = idHeader["X-Invocation-Id"]
		w.WriteHeader(resp.Status)
		_, _ = w.Write(resp.Body)
	case queue.StatusTimedOut:
		writeProblem(w, http.StatusGatewayTimeout, inv.Error, idHeader)
	case queue.StatusCancelled:
		writeProblem(w, http.StatusServiceUnavailable, "the invocation was cancelled: "+inv.Error, idHeader)
	default:
		writeProblem(w, http.StatusInternalServerError, s.failureDetail(ctx, name, id, inv.Error, hasKey), idHeader)
	}
}

// failureDetail is what a /fn caller learns about a failed invocation. The
// error is the script's own text (a Lua error names the chunk, the line and
// often a variable: "broken:6: attempt to call local 'missing'"), so a
// caller without a key gets only the invocation id unless the function
// opted in with expose_errors. A caller with a key of either scope could
// read the row anyway (GET /v1/invocations/{id}), as can anyone when the
// server requires no keys, so they see the text.
func (s *Server) failureDetail(ctx context.Context, function string, id int64, text string, hasKey bool) string {
	if hasKey {
		return text
	}
	expose, err := s.config.Functions.FunctionExposesErrors(ctx, function)
	if err != nil {
		// Hide rather than fail the answer: the row keeps the text.
		s.logger.ErrorContext(ctx, "read expose_errors", "function", function, "error", err)
	}
	if expose {
		return text
	}
	return fmt.Sprintf("the function failed; its error is in invocation %d (GET /v1/invocations/%d with an API key)", id, id)
}

// functionRequest is what the script sees as req: single-valued query and
// header maps, because that is what nearly every handler wants; repeated
// headers are joined with ", " as HTTP allows, repeated query keys keep the
// first value.
//
// Anyone may send a request to a public function, so whatever it carries
// must be storable in the invocation row's jsonb: the path, query keys and
// values, header values and host have every NUL and every byte sequence
// that is not UTF-8 replaced by U+FFFD (storableText). The body is stored as
// bytes and passed as is.
func functionRequest(r *http.Request, body []byte) *queue.HTTPRequest {
	req := &queue.HTTPRequest{
		Method:  r.Method,
		Path:    storableText("/" + r.PathValue("rest")),
		Query:   make(map[string]string),
		Headers: make(map[string]string, len(r.Header)+1),
		Body:    body,
	}
	var cleaned []string // query keys that change when cleaned
	query := r.URL.Query()
	for k, v := range query {
		if clean := storableText(k); clean != k {
			cleaned = append(cleaned, k)
			continue
		}
		req.Query[k] = storableText(v[0])
	}
	// Keys that clean to the same text as another keep the value of the
	// first in byte order, so that the request the script sees does not
	// depend on map order.
	slices.Sort(cleaned)
	for _, k := range cleaned {
		clean := storableText(k)
		if _, taken := req.Query[clean]; !taken {
			req.Query[clean] = storableText(query[k][0])
		}
	}
	for k, v := range r.Header {
		req.Headers[storableText(strings.ToLower(k))] = storableText(strings.Join(v, ", "))
	}
	// A PiCloud key is the platform's business: it must not reach the
	// script, nor be stored in the invocation row. Any other Authorization
	// is the function's own scheme and passes through; a key anywhere else
	// in the request is masked by Invoke.
	if token, ok := bearerToken(req.Headers["authorization"]); ok && strings.HasPrefix(token, keys.Prefix) {
		delete(req.Headers, "authorization")
	}
	req.Headers["host"] = storableText(r.Host)
	return req
}

// documentIngress adds /fn to the OpenAPI document. It is a plain handler,
// not a huma operation, because it takes any method and any body and answers
// with whatever the function returns.
func (s *Server) documentIngress() {
	registry := s.api.OpenAPI().Components.Schemas
	problem := &huma.Response{
		Description: "A problem document (RFC 9457).",
		Headers:     map[string]*huma.Param{"X-Invocation-Id": invocationIDHeader()},
		Content: map[string]*huma.MediaType{
			"application/problem+json": {Schema: registry.Schema(reflect.TypeFor[huma.ErrorModel](), true, "")},
		},
	}
	for _, method := range ingressMethods {
		op := &huma.Operation{
			OperationID: "call-function-" + strings.ToLower(method),
			Method:      method,
			Path:        "/fn/{name}",
			Summary:     "Call a function (" + method + ")",
			Description: "Runs the function's handle(req) and answers with its response. Every method is accepted, as are sub-paths " +
				"(/fn/{name}/any/path, seen by the script as req.path). Each call is an invocation row; its id is in X-Invocation-Id. " +
				"Anyone may call a function unless it was deployed with auth \"key\"; then it needs an API key of either scope, " +
				"which the platform removes from the headers the script sees. The path, query and header values reach the script (and the " +
				"invocation row) as text: a NUL character or bytes that are not UTF-8 become U+FFFD; the body is passed as is.",
			Tags: []string{"ingress"},
			// Public by default; a function deployed with auth "key" needs
			// an invoke or admin key.
			Security: []map[string][]string{{}, {securityScheme: {}}},
			Parameters: []*huma.Param{{
				Name: "name", In: "path", Required: true,
				Schema: &huma.Schema{Type: huma.TypeString, Pattern: catalog.FunctionNamePattern},
			}},
			Responses: map[string]*huma.Response{
				"200": {
					Description: "The function's response; status, headers and body are the function's own.",
					Headers:     map[string]*huma.Param{"X-Invocation-Id": invocationIDHeader()},
					Content:     map[string]*huma.MediaType{"*/*": {Schema: &huma.Schema{}}},
				},
				"204": {Description: "The function returned nil.", Headers: map[string]*huma.Param{"X-Invocation-Id": invocationIDHeader()}},
				"401": {Description: "The function was deployed with auth \"key\" and the call has no valid API key.", Headers: problem.Headers, Content: problem.Content},
				"404": problem,
				"413": problem,
				"500": {Description: "The function failed. For a caller with an API key (or of a function deployed with expose_errors), detail carries the Lua error with its line; " +
					"anyone else gets a generic detail naming the invocation, whose row keeps the error.", Headers: problem.Headers, Content: problem.Content},
				"504": {Description: "The function ran past its time or instruction limit.", Headers: problem.Headers, Content: problem.Content},
			},
		}
		if method != http.MethodGet && method != http.MethodDelete {
			op.RequestBody = &huma.RequestBody{
				Description: "Passed to the function as req.body.",
				Content:     map[string]*huma.MediaType{"*/*": {Schema: &huma.Schema{}}},
			}
		}
		s.api.OpenAPI().AddOperation(op)
	}
}

func invocationIDHeader() *huma.Param {
	return &huma.Param{Description: "Id of the invocation row, for GET /v1/invocations/{id}.", Schema: &huma.Schema{Type: huma.TypeInteger, Format: "int64"}}
}

// storableText returns s with every NUL character and every byte sequence
// that is not UTF-8 replaced by U+FFFD, for input that must be taken
// rather than refused (a /fn request's path, query and headers).
func storableText(s string) string {
	if strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
