package api_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/picloud/picloud/internal/platformtest"
	"github.com/picloud/picloud/keys"
)

// TestKeysNeverReachScriptOrRow: a PiCloud key sent to /fn any way but the
// standard Authorization: Bearer (which is removed) is replaced by
// keys.Mask before the invocation row is written and before the script
// sees the request, wherever it is in the request.
func TestKeysNeverReachScriptOrRow(t *testing.T) {
	t.Parallel()
	p := platformtest.Start(t, platformtest.Options{Auth: true})
	admin := []string{"Authorization", "Bearer " + p.AdminKey}
	key := p.Key(t, "invoke")
	unknown := keys.Prefix + strings.Repeat("b", 40) // the shape is enough
	echo := `function handle(req)
  return {method = req.method, path = req.path, query = req.query, headers = req.headers, body = req.body}
end`
	if res := do(t, http.MethodPut, p.URL+"/v1/functions/echo", map[string]string{"source": echo}, admin...); res.status != http.StatusCreated {
		t.Fatalf("deploy: %d %s", res.status, res.body)
	}
	basic := func(user, password string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	}

	for _, tt := range []struct {
		name    string
		path    string      // after /fn/echo
		header  [][2]string // added in order, so a name may repeat
		body    string
		removed bool // the standard header: gone rather than masked
	}{
		{name: "standard bearer", header: [][2]string{{"Authorization", "Bearer " + key}}, removed: true},
		{name: "access_token query parameter", path: "?access_token=" + key},
		{name: "key as a query name", path: "?" + key},
		{name: "encoded in the query", path: "?t=%70ic_" + key[len(keys.Prefix):]},
		{name: "second Authorization header", header: [][2]string{{"Authorization", "Bearer user-token"}, {"Authorization", "Bearer " + key}}},
		{name: "Bearer and a tab", header: [][2]string{{"Authorization", "Bearer\t" + key}}},
		{name: "lower-case bearer, two spaces", header: [][2]string{{"Authorization", "bearer  " + key}}, removed: true},
		{name: "bare key in Authorization", header: [][2]string{{"Authorization", key}}},
		{name: "Basic credentials", header: [][2]string{{"Authorization", basic("", key)}}},
		{name: "Basic credentials with a user", header: [][2]string{{"Authorization", basic("ada", key)}}},
		{name: "X-Api-Key", header: [][2]string{{"X-Api-Key", key}}},
		{name: "Proxy-Authorization", header: [][2]string{{"Proxy-Authorization", "Bearer " + key}}},
		{name: "cookie", header: [][2]string{{"Cookie", "theme=dark; session=" + key + "; lang=en"}}},
		{name: "upper-cased", header: [][2]string{{"X-Token", strings.ToUpper(key)}}},
		{name: "glued to other text", header: [][2]string{{"X-Token", "x" + key + "y2"}}},
		{name: "unknown key of the right shape", header: [][2]string{{"X-Token", unknown}}},
		{name: "header name", header: [][2]string{{key, "1"}}},
		{name: "path", path: "/users/" + key + "/profile"},
		{name: "encoded path", path: "/%70ic_" + key[len(keys.Prefix):]},
		{name: "JSON body", body: `{"api_key": "` + key + `"}`},
		{name: "form body", body: "token=" + key + "&x=1"},
		{name: "two keys in a body", body: key + " " + p.AdminKey},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, p.URL+"/fn/echo"+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range tt.header {
				req.Header.Add(h[0], h[1])
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			seen, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil || res.StatusCode != http.StatusOK {
				t.Fatalf("call: %d %s %v", res.StatusCode, seen, err)
			}
			row := do(t, http.MethodGet, p.URL+"/v1/invocations/"+res.Header.Get("X-Invocation-Id"), nil, admin...)
			if row.status != http.StatusOK {
				t.Fatalf("row: %d %s", row.status, row.body)
			}
			for what, text := range map[string]string{"the script": string(seen), "the row": string(row.body)} {
				for _, k := range []string{key, p.AdminKey, unknown} {
					if strings.Contains(strings.ToLower(text), k[len(keys.Prefix):]) {
						t.Errorf("%s sees the key: %s", what, text)
					}
				}
				for _, h := range tt.header {
					if credentials, ok := strings.CutPrefix(h[1], "Basic "); ok && strings.Contains(text, credentials) {
						t.Errorf("%s sees the Basic credentials holding the key: %s", what, text)
					}
				}
				mask := strings.Contains(text, keys.Mask) || strings.Contains(text, url.QueryEscape(keys.Mask))
				if tt.removed == mask {
					t.Errorf("%s: mask shown %v, want %v: %s", what, mask, !tt.removed, text)
				}
			}
		})
	}
}
