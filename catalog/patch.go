package catalog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// FunctionPatch changes some of a function: a nil field keeps what the
// function has. A pointer to the zero value resets the option to its
// default (no timeout of its own, one attempt, no concurrency limit, a 1 s
// backoff, the default instruction budget, no hosts, public, the platform's
// log retention, errors hidden), except for RetryBackoff, where zero means
// retrying at once: reset it with DefaultRetryBackoff.
type FunctionPatch struct {
	Source          *string
	Timeout         *time.Duration
	MaxAttempts     *int
	MaxConcurrency  *int
	RetryBackoff    *time.Duration
	MaxInstructions *int64
	HTTPAllow       *[]string
	Auth            *Auth
	LogRetention    *time.Duration
	ExposeErrors    *bool
}

// DefaultRetryBackoff is the backoff of a function that sets none through
// the REST API.
const DefaultRetryBackoff = time.Second

// DefaultFunctionOptions are the options of a function created without any.
func DefaultFunctionOptions() FunctionOptions {
	return FunctionOptions{MaxAttempts: 1, RetryBackoff: DefaultRetryBackoff, HTTPAllow: []string{}, Auth: AuthPublic}
}

// Patched returns o with the patch's options applied.
func (o FunctionOptions) Patched(p FunctionPatch) FunctionOptions {
	def := DefaultFunctionOptions()
	set := func(dst *time.Duration, src *time.Duration, zero time.Duration) {
		if src != nil {
			*dst = *src
			if *src == 0 {
				*dst = zero
			}
		}
	}
	set(&o.Timeout, p.Timeout, 0)
	if p.RetryBackoff != nil {
		o.RetryBackoff = *p.RetryBackoff // zero is a valid backoff: retry at once
	}
	set(&o.LogRetention, p.LogRetention, 0)
	if p.MaxAttempts != nil {
		o.MaxAttempts = max(*p.MaxAttempts, def.MaxAttempts)
	}
	if p.MaxConcurrency != nil {
		o.MaxConcurrency = *p.MaxConcurrency
	}
	if p.MaxInstructions != nil {
		o.MaxInstructions = *p.MaxInstructions
	}
	if p.HTTPAllow != nil {
		o.HTTPAllow = append([]string{}, *p.HTTPAllow...)
	}
	if p.Auth != nil {
		o.Auth = *p.Auth
		if o.Auth == "" {
			o.Auth = def.Auth
		}
	}
	if p.ExposeErrors != nil {
		o.ExposeErrors = *p.ExposeErrors
	}
	return o
}

// errDryRun rolls back a dry run's transaction.
var errDryRun = errors.New("dry run")

// PatchFunction changes what the patch gives and keeps the rest, in one
// transaction that holds the function's row, so that two patches of
// different options both stick. A function that does not exist is created
// when the patch has a source (with defaults for the options not given);
// without one it is ErrFunctionNotFound. before is the function as it was
// (Version 0 when new); after as it is now. With dryRun nothing is stored,
// and after is what would be.
func (c *Catalog) PatchFunction(ctx context.Context, name string, p FunctionPatch, dryRun bool) (before, after Function, err error) {
	if !ValidFunctionName(name) {
		return Function{}, Function{}, &InvalidFunctionNameError{Name: name}
	}
	if p.Source != nil {
		// Before the transaction: compiling a large source must not hold
		// the row.
		if err := checkFunction(name, *p.Source, FunctionOptions{}); err != nil {
			return Function{}, Function{}, err
		}
	}
	err = pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		q := c.queries.WithTx(tx)
		// Creates a placeholder row when the function is new; the
		// transaction's rollback removes it again.
		if _, err := q.LockFunctionForPut(ctx, name); err != nil {
			return fmt.Errorf("lock function: %w", err)
		}
		row, err := q.GetFunction(ctx, name)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if p.Source == nil {
				return fmt.Errorf("%w: %s", ErrFunctionNotFound, name)
			}
			before = Function{Name: name, Options: DefaultFunctionOptions()}
		case err != nil:
			return fmt.Errorf("get function: %w", err)
		default:
			before = functionFromRow(row)
		}
		source := before.Source
		if p.Source != nil {
			source = *p.Source
		}
		opts := before.Options.Patched(p)
		if err := opts.validate(); err != nil {
			return err
		}
		if after, _, err = storeFunction(ctx, q, name, source, opts); err != nil {
			return err
		}
		if dryRun {
			return errDryRun
		}
		return nil
	})
	if err != nil && !errors.Is(err, errDryRun) {
		return Function{}, Function{}, err
	}
	return before, after, nil
}

// FunctionExposesErrors reports whether the function shows its errors to
// /fn callers without a key (FunctionOptions.ExposeErrors); false for a
// function that no longer exists.
func (c *Catalog) FunctionExposesErrors(ctx context.Context, name string) (bool, error) {
	expose, err := c.queries.FunctionExposesErrors(ctx, name)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read expose_errors: %w", err)
	}
	return expose, nil
}
