package picloudtest_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"

	"github.com/picloud/picloud/picloudtest"
	picloud "github.com/picloud/picloud/sdk/go"
)

// Outside a test (in TestMain, an example, a program) New starts the
// platform and Close stops it. Its Client deploys and invokes functions,
// and its Pool reads the platform's tables.
func ExampleNew() {
	ctx := context.Background()
	p, err := picloudtest.New(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	put, err := p.Client.PutFunctionWithResponse(ctx, "hello", picloud.PutFunctionJSONRequestBody{
		Source: `function handle(req) return "Hello, " .. req.payload.name .. "!" end`,
	})
	if err == nil {
		err = picloud.CheckResponse(put)
	}
	if err != nil {
		log.Fatal(err)
	}
	inv, err := p.Client.InvokeFunctionWithResponse(ctx, "hello", nil, picloud.InvokeFunctionJSONRequestBody{
		Payload: map[string]any{"name": "Ada"},
	})
	if err == nil {
		err = picloud.CheckResponse(inv)
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(inv.JSON200.Status, inv.JSON200.Result)

	var n int
	err = p.Pool.QueryRow(ctx, "SELECT count(*) FROM picloud.invocations WHERE function = 'hello'").Scan(&n)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(n, "invocation in the platform's database")
	// Output:
	// succeeded Hello, Ada!
	// 1 invocation in the platform's database
}

// Without API keys anyone may call the API, as with picloud dev.
func ExampleWithoutAuth() {
	ctx := context.Background()
	p, err := picloudtest.New(ctx, picloudtest.WithoutAuth())
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	client, err := picloud.NewClientWithResponses(p.URL) // no key
	if err != nil {
		log.Fatal(err)
	}
	put, err := client.PutFunctionWithResponse(ctx, "ping", picloud.PutFunctionJSONRequestBody{
		Source: `function handle(req) return "pong" end`,
	})
	if err == nil {
		err = picloud.CheckResponse(put)
	}
	if err != nil {
		log.Fatal(err)
	}

	res, err := http.Get(p.URL + put.JSON201.Url)
	if err != nil {
		log.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(put.JSON201.Url, res.StatusCode, string(body))
	// Output: /fn/ping 200 pong
}
