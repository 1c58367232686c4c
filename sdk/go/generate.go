package picloud

// The generator runs from the module proxy at a pinned version rather than
// as a tool dependency, so the main module does not carry its dependencies.
//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2 -config oapi-codegen.yaml ../../openapi/openapi-3.0.yaml
