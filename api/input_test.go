package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"
)

// withBody decodes body into the Body of in, as huma would, and returns in.
func withBody[I any](t *testing.T, in *I, body string) *I {
	t.Helper()
	b := any(in)
	switch in := b.(type) {
	case *invokeInput:
		decode(t, &in.Body, body)
	case *invokeBatchInput:
		decode(t, &in.Body, body)
	case *putFunctionInput:
		decode(t, &in.Body, body)
	default:
		t.Fatalf("withBody: %T", in)
	}
	return in
}

func decode(t *testing.T, into any, body string) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), into); err != nil {
		t.Fatal(err)
	}
}

// TestCheckInput: where checkInput looks and how it names what it finds.
func TestCheckInput(t *testing.T) {
	t.Parallel()
	many := `{"payload": [` + strings.Repeat(`"\u0000", `, 49) + `"\u0000"]}`
	for _, tc := range []struct {
		name string
		in   any
		want []string // "location: message" prefixes, in order; none for clean input
	}{
		{"clean", withBody(t, &invokeInput{Name: "f", IdempotencyHeader: "k"}, `{"payload": {"a": ["é", 1, null, true, {"": "x"}]}, "run_at": "2030-01-01T00:00:00Z"}`), nil},
		{"path", &setEnvInput{Name: "f", Key: "K\x00"}, []string{"path.key: contains the NUL"}},
		{"header", &invokeInput{IdempotencyHeader: "\xff"}, []string{"header.Idempotency-Key: is not valid UTF-8"}},
		{"query", &listInvocationsInput{Function: "a\x00", Cursor: "\xc3"}, []string{"query.function: contains the NUL", "query.cursor: is not valid UTF-8"}},
		{"embedded options", withBody(t, &putFunctionInput{}, `{"source": "x", "http_allow": ["ok", "b\u0000"]}`), []string{"body.http_allow[1]: contains the NUL"}},
		{"payload in key order", withBody(t, &invokeInput{}, `{"payload": {"z": "\u0000", "a": [{"b\u0000": {"c": "\u0000"}}], "m": {"": "\u0000"}}}`),
			[]string{"body.payload.a[0]: has a key that contains the NUL", "body.payload.m.: contains the NUL", "body.payload.z: contains the NUL"}},
		{"map of strings", &struct{ Body EnvBody }{EnvBody{Env: map[string]string{"A": "\x00", "\xff": "x"}}}, []string{"body.env.A: contains the NUL", "body.env: has a key that is not valid UTF-8"}},
		{"times", withBody(t, &invokeBatchInput{}, `{"invocations": [{"run_at": "2000-01-01T00:00:00Z"}, {"run_at": "1999-12-31T23:59:59.999Z"},
			{"run_at": "9999-12-31T23:59:59.999Z"}, {"run_at": "0001-01-01T00:00:00Z"}, {"run_at": "9999-12-31T23:00:00-01:00"}]}`),
			[]string{"body.invocations[1].run_at: must be between 2000-01-01T00:00:00Z and 9999-12-31T23:59:59Z", "body.invocations[3].run_at: must be", "body.invocations[4].run_at: must be"}},
		{"capped", withBody(t, &invokeInput{}, many), []string{"body.payload[0]: contains the NUL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkInput(tc.in)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("clean input refused: %v", err)
				}
				return
			}
			var model *huma.ErrorModel
			if !errors.As(err, &model) || model.Status != 422 || model.Detail != "validation failed" {
				t.Fatalf("got %v, want a 422", err)
			}
			var got []string
			for _, d := range model.Errors {
				got = append(got, fmt.Sprintf("%s: %s", d.Location, d.Message))
			}
			if tc.name == "capped" {
				if len(got) != maxInputProblems {
					t.Fatalf("got %d details, want the cap of %d", len(got), maxInputProblems)
				}
				got = got[:1]
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Errorf("detail %d = %q, want %q...", i, got[i], tc.want[i])
				}
			}
		})
	}
}
