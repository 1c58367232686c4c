package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/picloud/picloud/api"
)

type openapiCmd struct {
	Dir string `default:"openapi" type:"path" help:"Directory to write openapi.yaml (3.1) and openapi-3.0.yaml into."`
}

func (c *openapiCmd) Run(_ context.Context, logger *slog.Logger) error {
	v31, v30, err := api.OpenAPIDocuments()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return err
	}
	for name, doc := range map[string][]byte{"openapi.yaml": v31, "openapi-3.0.yaml": v30} {
		path := filepath.Join(c.Dir, name)
		if err := os.WriteFile(path, doc, 0o644); err != nil {
			return err
		}
		logger.Info("wrote", "path", path)
	}
	return nil
}
