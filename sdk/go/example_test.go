package picloud_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"

	"github.com/picloud/picloud/internal/platformtest"
	picloud "github.com/picloud/picloud/sdk/go"
)

// A client deploys a function and calls it, waiting for the result.
func ExampleNewClientWithResponses() {
	// A program would take the server's URL and an API key from its
	// configuration; the example runs a server of its own.
	server, stop, err := platformtest.Run(platformtest.Options{Auth: true})
	if err != nil {
		log.Fatal(err)
	}
	defer stop()

	ctx := context.Background()
	client, err := picloud.NewClientWithResponses(server.URL, picloud.WithAPIKey(server.AdminKey))
	if err != nil {
		log.Fatal(err)
	}

	put, err := client.PutFunctionWithResponse(ctx, "hello", picloud.PutFunctionJSONRequestBody{
		Source: `function handle(req) return "Hello, " .. (req.payload.name or "world") .. "!" end`,
	})
	if err == nil {
		err = picloud.CheckResponse(put)
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(put.StatusCode(), put.JSON201.Url, "version", put.JSON201.Version)

	inv, err := client.InvokeFunctionWithResponse(ctx, "hello", nil, picloud.InvokeFunctionJSONRequestBody{
		Payload: map[string]any{"name": "Ada"},
	})
	if err == nil {
		err = picloud.CheckResponse(inv)
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(inv.JSON200.Status, inv.JSON200.Result)
	// Output:
	// 201 /fn/hello version 1
	// succeeded Hello, Ada!
}

// CheckResponse turns an answer other than 2xx into an *APIError, whose
// text says what the server refused and why.
func ExampleCheckResponse() {
	server, stop, err := platformtest.Run(platformtest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer stop()
	client, err := picloud.NewClientWithResponses(server.URL)
	if err != nil {
		log.Fatal(err)
	}

	put, err := client.PutFunctionWithResponse(context.Background(), "broken", picloud.PutFunctionJSONRequestBody{
		Source: "function handle(req)\n  return 1 +\nend",
	})
	if err != nil {
		log.Fatal(err) // the server did not answer
	}
	err = picloud.CheckResponse(put)
	fmt.Println(err)
	var apiErr *picloud.APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusUnprocessableEntity {
		fmt.Println("fix the source and deploy again")
	}
	// Output:
	// 422 Unprocessable Entity: the source does not compile; body.source: line 3: unexpected symbol near 'end'
	// fix the source and deploy again
}
