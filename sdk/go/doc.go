// Package picloud is the Go client of the PiCloud REST API, generated from
// the project's OpenAPI 3.0 document with oapi-codegen.
//
// Start with [NewClientWithResponses] and the server's base URL; pass
// [WithAPIKey] when the server requires API keys. Every operation has two
// forms: Op returns the decoded answer in fields named after the status
// (JSON200, ApplicationproblemJSON404, ...), OpWithBody takes a raw body.
// [CheckResponse] turns any answer outside 2xx into an [*APIError] that
// carries the server's problem details.
//
// Everything in picloud.gen.go is generated: run go generate ./sdk/go after
// the OpenAPI document changes. The other files are written by hand and use
// only what every generated response has, so they survive regeneration.
package picloud
