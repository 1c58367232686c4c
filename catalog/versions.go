package catalog

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrVersionNotFound: the function exists but never had that version.
var ErrVersionNotFound = errors.New("function version not found")

// FunctionVersion is one source a function had. Source is empty in
// listings.
type FunctionVersion struct {
	Version     int
	SHA256      string
	Source      string
	SourceBytes int
	CreatedAt   time.Time
}

// ListFunctionVersions returns every version of a function, newest first.
func (c *Catalog) ListFunctionVersions(ctx context.Context, name string) ([]FunctionVersion, error) {
	rows, err := c.queries.ListFunctionVersions(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("list function versions: %w", err)
	}
	// Versions go with their function (ON DELETE CASCADE), so none means
	// no function.
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrFunctionNotFound, name)
	}
	out := make([]FunctionVersion, len(rows))
	for i, r := range rows {
		out[i] = FunctionVersion{
			Version: int(r.Version), SHA256: hex.EncodeToString(r.SourceSha256),
			SourceBytes: int(r.SourceBytes), CreatedAt: r.CreatedAt,
		}
	}
	return out, nil
}

// GetFunctionVersion returns one version of a function with its source.
func (c *Catalog) GetFunctionVersion(ctx context.Context, name string, version int) (FunctionVersion, error) {
	r, err := c.queries.GetFunctionVersion(ctx, name, int32(version))
	if errors.Is(err, pgx.ErrNoRows) {
		if _, ferr := c.queries.GetFunction(ctx, name); errors.Is(ferr, pgx.ErrNoRows) {
			return FunctionVersion{}, fmt.Errorf("%w: %s", ErrFunctionNotFound, name)
		}
		return FunctionVersion{}, fmt.Errorf("%w: %s version %d", ErrVersionNotFound, name, version)
	}
	if err != nil {
		return FunctionVersion{}, fmt.Errorf("get function version: %w", err)
	}
	return FunctionVersion{
		Version: int(r.Version), SHA256: hex.EncodeToString(r.SourceSha256), Source: r.Source,
		SourceBytes: len(r.Source), CreatedAt: r.CreatedAt,
	}, nil
}
