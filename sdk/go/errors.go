package picloud

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Response is what every generated XxxResponse type has, whichever statuses
// its operation documents.
type Response interface {
	StatusCode() int
	GetBody() []byte
}

// APIError is an answer outside 2xx. Problem holds the server's RFC 9457
// problem details when the body was one; its fields are nil otherwise.
type APIError struct {
	StatusCode int
	Problem    ErrorModel
}

func (e *APIError) Error() string {
	title := http.StatusText(e.StatusCode)
	if e.Problem.Title != nil && *e.Problem.Title != "" {
		title = *e.Problem.Title
	}
	msg := fmt.Sprintf("%d %s", e.StatusCode, title)
	if e.Problem.Detail != nil && *e.Problem.Detail != "" {
		msg += ": " + *e.Problem.Detail
	}
	if e.Problem.Errors != nil {
		for _, d := range *e.Problem.Errors {
			switch {
			case d.Message == nil || *d.Message == "":
			case d.Location != nil && *d.Location != "":
				msg += "; " + *d.Location + ": " + *d.Message
			default:
				msg += "; " + *d.Message
			}
		}
	}
	return msg
}

// CheckResponse returns nil for a 2xx answer and an *APIError otherwise.
// It decodes the body itself rather than reading the generated
// ApplicationproblemJSONnnn fields, which exist only for the statuses the
// document lists for that operation (a proxy's 502 is in none of them).
func CheckResponse(r Response) error {
	code := r.StatusCode()
	if code >= 200 && code < 300 {
		return nil
	}
	e := &APIError{StatusCode: code}
	// A body that is not problem+json (say, a proxy's HTML page) leaves
	// Problem empty, and the status alone describes the error.
	_ = json.Unmarshal(r.GetBody(), &e.Problem)
	return e
}

// Ptr returns a pointer to v, for the optional fields of request bodies
// and parameters.
func Ptr[T any](v T) *T { return &v }
