package picloud_test

import (
	"context"
	"fmt"
	"log"
	"os"

	picloud "github.com/picloud/picloud/sdk/go"
)

// A client deploys a function and calls it, waiting for the result. It
// needs a running server, so the example is compiled but not run.
func ExampleNewClientWithResponses() {
	ctx := context.Background()
	client, err := picloud.NewClientWithResponses("http://127.0.0.1:8080",
		picloud.WithAPIKey(os.Getenv("PICLOUD_API_KEY")))
	if err != nil {
		log.Fatal(err)
	}

	put, err := client.PutFunctionWithResponse(ctx, "hello", picloud.PutFunctionJSONRequestBody{
		Source: `function handle(req) return "Hello, " .. (req.payload.name or "world") .. "!" end`,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := picloud.CheckResponse(put); err != nil {
		log.Fatal(err) // e.g. 422 Unprocessable Entity: the source does not compile; body.source: line 1: ...
	}

	inv, err := client.InvokeFunctionWithResponse(ctx, "hello", nil, picloud.InvokeFunctionJSONRequestBody{
		Payload: map[string]any{"name": "Ada"},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := picloud.CheckResponse(inv); err != nil {
		log.Fatal(err)
	}
	fmt.Println(inv.JSON200.Status, inv.JSON200.Result) // succeeded Hello, Ada!
}
