package picloudtest_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/picloud/picloud/picloudtest"
	picloud "github.com/picloud/picloud/sdk/go"
)

// These examples are compiled but not run: each needs a container and a
// test's t. In a test, t is the test's *testing.T.

func ExampleStart() {
	var t *testing.T // the test's t

	p := picloudtest.Start(t)
	p.DeployFile(t, "hello", "testdata/hello.lua")
	inv := p.Invoke(t, "hello", map[string]any{"name": "Ada"})
	if inv.Status != "succeeded" || inv.Result != "Hello, Ada!" {
		t.Errorf("hello = %s %v: %s", inv.Status, inv.Result, inv.Error)
	}

	// The platform's tables are in the test's own database.
	var n int
	err := p.Pool.QueryRow(t.Context(), "SELECT count(*) FROM picloud.invocations WHERE function = 'hello'").Scan(&n)
	if err != nil || n != 1 {
		t.Errorf("%d invocations, %v", n, err)
	}
}

func ExampleMain() {
	// In the package's test file, so that its tests share one container:
	//
	//	func TestMain(m *testing.M) { os.Exit(picloudtest.Main(m)) }
	//
	// With options, for every Start of the package:
	var m *testing.M // TestMain's m
	os.Exit(picloudtest.Main(m, picloudtest.WithConcurrency(4)))
}

func ExamplePlatform_Deploy() {
	var t *testing.T // the test's t

	p := picloudtest.Start(t)
	fn := p.Deploy(t, "notify", `
function handle(req)
  log.info("notifying", {region = env.REGION})
  return {sent = secrets.TOKEN ~= nil}
end`,
		picloudtest.Timeout(2*time.Second),
		picloudtest.Env("REGION", "eu-west"),
		picloudtest.Secret("TOKEN", "test-token"),
		picloudtest.RequireKey(),
	)
	fmt.Println(fn.Url) // /fn/notify
}

func ExamplePlatform_InvokeAsync() {
	var t *testing.T // the test's t

	p := picloudtest.Start(t)
	p.DeployFile(t, "sync_orders", "testdata/sync_orders.lua", picloudtest.MaxAttempts(3))
	id := p.InvokeAsync(t, "sync_orders", map[string]any{"since": "2024-01-01"})
	inv := p.Wait(t, id)
	if inv.Status != "succeeded" {
		t.Errorf("after %d attempts: %s", inv.Attempt, inv.Error)
	}
	for _, line := range p.Logs(t, id) {
		t.Log(line.Level, line.Message, line.Fields)
	}
}

func ExampleWithoutAuth() {
	var t *testing.T // the test's t

	// Anyone may call the API, as with picloud dev.
	p := picloudtest.Start(t, picloudtest.WithoutAuth())
	c, err := picloud.NewClientWithResponses(p.URL)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.ListFunctionsWithResponse(t.Context())
	if err == nil {
		err = picloud.CheckResponse(res)
	}
	if err != nil {
		t.Fatal(err)
	}
}
