package api_test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/danielgtaylor/huma/v2"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/helpers"

	"github.com/picloud/picloud/api"
)

// TestOpenAPIValidates checks both documents against the OpenAPI
// specification's own schemas (3.1 and 3.0), as client generators will.
func TestOpenAPIValidates(t *testing.T) {
	t.Parallel()
	v31, v30, err := api.OpenAPIDocuments()
	if err != nil {
		t.Fatal(err)
	}
	for name, doc := range map[string][]byte{"3.1": v31, "3.0": v30} {
		t.Run(name, func(t *testing.T) {
			document, err := libopenapi.NewDocument(doc)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			v, errs := validator.NewValidator(document)
			if len(errs) > 0 {
				t.Fatalf("validator: %v", errs)
			}
			if ok, problems := v.ValidateDocument(); !ok {
				for _, p := range problems {
					t.Errorf("%s: %s", p.Message, p.Reason)
					for _, se := range p.SchemaValidationErrors {
						t.Errorf("  at %s (%s): %s", se.FieldPath, se.KeywordLocation, se.Reason)
					}
				}
			}
		})
	}
}

// TestOpenAPIComplete holds every operation to what SDK users read: an id,
// a summary, a description, tags, security, problem+json errors, and
// examples in what it takes and returns.
func TestOpenAPIComplete(t *testing.T) {
	t.Parallel()
	doc := api.New(api.Config{}).OpenAPI()
	ops := 0
	for path, item := range doc.Paths {
		for method, op := range map[string]*huma.Operation{"GET": item.Get, "PUT": item.Put, "POST": item.Post, "DELETE": item.Delete, "PATCH": item.Patch} {
			if op == nil {
				continue
			}
			ops++
			where := method + " " + path
			if op.OperationID == "" || op.Summary == "" || op.Description == "" || len(op.Tags) == 0 {
				t.Errorf("%s: operationId %q, summary %q, tags %v, description %d characters", where, op.OperationID, op.Summary, op.Tags, len(op.Description))
			}
			if len(op.Security) == 0 {
				t.Errorf("%s: no security requirement (public operations say so with an empty one)", where)
			}
			secured := false
			for _, req := range op.Security {
				if _, ok := req["apiKey"]; ok {
					secured = true
				}
			}
			if secured && (op.Responses["401"] == nil || op.Responses["403"] == nil) && !strings.HasPrefix(path, "/fn/") {
				t.Errorf("%s: needs a key but documents no 401 and 403", where)
			}
			problems := 0
			for status, res := range op.Responses {
				if status == "default" || status[0] == '4' || status[0] == '5' {
					if res.Content["application/problem+json"] == nil {
						t.Errorf("%s: error response %s is not problem+json", where, status)
					}
					problems++
				}
			}
			if problems == 0 {
				t.Errorf("%s: documents no error response", where)
			}
			if rb := op.RequestBody; rb != nil && rb.Content["application/json"] != nil && !hasExample(doc, rb.Content["application/json"].Schema, 0) {
				t.Errorf("%s: the request body has no example", where)
			}
			for status, res := range op.Responses {
				if status[0] == '2' && res.Content["application/json"] != nil && !hasExample(doc, res.Content["application/json"].Schema, 0) {
					t.Errorf("%s: response %s has no example", where, status)
				}
			}
		}
	}
	if ops < 20 {
		t.Errorf("found %d operations; the walk is broken", ops)
	}
}

// hasExample reports whether a schema, or anything within it, carries an
// example.
func hasExample(doc *huma.OpenAPI, s *huma.Schema, depth int) bool {
	if s == nil || depth > 8 {
		return false
	}
	if s.Ref != "" {
		s = doc.Components.Schemas.SchemaFromRef(s.Ref)
		if s == nil {
			panic(fmt.Sprintf("dangling $ref %s", s.Ref))
		}
	}
	if len(s.Examples) > 0 {
		return true
	}
	for _, p := range s.Properties {
		if hasExample(doc, p, depth+1) {
			return true
		}
	}
	return hasExample(doc, s.Items, depth+1)
}

// specValidator checks the answers tests get against the committed
// document: the contract holds for what the server really sends, not only
// for what it declares.
var specValidator = sync.OnceValues(func() (validator.Validator, error) {
	spec, err := os.ReadFile("../openapi/openapi.yaml")
	if err != nil {
		return nil, err
	}
	document, err := libopenapi.NewDocument(spec)
	if err != nil {
		return nil, err
	}
	v, errs := validator.NewValidator(document)
	return v, errors.Join(errs...)
})

func checkAgainstSpec(t testing.TB, req *http.Request, res *http.Response) {
	t.Helper()
	if strings.HasPrefix(req.URL.Path, "/fn/") && res.StatusCode < 300 {
		return // the function's own answer: any status, headers and body
	}
	v, err := specValidator()
	if err != nil {
		t.Fatalf("load openapi/openapi.yaml: %v", err)
	}
	if ok, problems := v.ValidateHttpResponse(req, res); !ok {
		for _, p := range problems {
			if p.ValidationType == helpers.PathValidation && res.StatusCode == http.StatusNotFound {
				continue // a route the API does not have: the catch-all's 404
			}
			t.Errorf("%s %s → %d does not match the OpenAPI document: %s %s", req.Method, req.URL.Path, res.StatusCode, p.Message, p.Reason)
			for _, se := range p.SchemaValidationErrors {
				t.Errorf("  at %s: %s", se.FieldPath, se.Reason)
			}
		}
	}
}
