package example

import (
	"io"
	"net/http"
	"testing"

	"github.com/picloud/picloud/picloudtest"
)

// A package with several such tests should share one PostgreSQL container
// between them (each test still gets a database of its own):
//
//	func TestMain(m *testing.M) { os.Exit(picloudtest.Main(m)) }
//
// Without it, as here, every Start runs a container of its own.

func TestGreet(t *testing.T) {
	p := picloudtest.Start(t)
	p.DeployFile(t, "greet", "testdata/greet.lua")
	inv := p.Invoke(t, "greet", map[string]any{"name": "Ada"})

	if inv.Status != "succeeded" || inv.Result != "Hello, Ada!" {
		t.Fatalf("greet = %s %v, error %q", inv.Status, inv.Result, inv.Error)
	}
	if len(inv.Logs) != 1 || inv.Logs[0].Message != "greeting" {
		t.Errorf("logs = %+v", inv.Logs)
	}

	// The same function over HTTP, as its users call it.
	res, err := http.Get(p.URL + "/fn/greet?name=Grace")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || string(body) != "Hello, Grace!" {
		t.Errorf("GET /fn/greet = %d %q", res.StatusCode, body)
	}
}
