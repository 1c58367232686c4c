package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/picloud/picloud/catalog"
	"github.com/picloud/picloud/internal/dbtest"
	"github.com/picloud/picloud/internal/platformtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

func newCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	return catalog.New(platformtest.Database(t))
}

func TestPutFunctionConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newCatalog(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if _, _, err := c.PutFunction(ctx, "f", fmt.Sprintf("function handle() return %d end", i), catalog.FunctionOptions{}); err != nil {
				t.Errorf("PutFunction: %v", err)
			}
		})
	}
	wg.Wait()
	fn, err := c.GetFunction(ctx, "f")
	if err != nil || fn.Version != 8 {
		t.Errorf("after 8 concurrent distinct PUTs: version %d, %v; want 8", fn.Version, err)
	}
}

// TestPutFunctionRefuses: what every invocation would fail on is refused
// with an error of the catalog's own, and nothing is stored.
func TestPutFunctionRefuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newCatalog(t)
	tests := []struct {
		name, function, source string
		opts                   catalog.FunctionOptions
		check                  func(error) bool
	}{
		{"bad name", "Bad", "function handle() end", catalog.FunctionOptions{},
			func(err error) bool { return errors.As(err, new(*catalog.InvalidFunctionNameError)) }},
		{"syntax error on line 2", "syntax", "function handle(\n", catalog.FunctionOptions{},
			func(err error) bool {
				var src *catalog.SourceError
				return errors.As(err, &src) && src.Line == 2 && src.Message == "line 2: <name> or '...' expected near <eof>"
			}},
		{"no handle", "nohandle", "function main() end", catalog.FunctionOptions{},
			func(err error) bool {
				var src *catalog.SourceError
				return errors.As(err, &src) && src.Line == 0
			}},
		{"options out of range", "slow", "function handle() end", catalog.FunctionOptions{Timeout: time.Hour},
			func(err error) bool { return errors.As(err, new(*catalog.InvalidOptionsError)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := c.PutFunction(ctx, tt.function, tt.source, tt.opts)
			if !tt.check(err) {
				t.Errorf("PutFunction = %v (%T)", err, err)
			}
			if checked := c.CheckFunction(tt.function, tt.source, tt.opts); checked == nil || checked.Error() != err.Error() {
				t.Errorf("CheckFunction = %v, want what PutFunction said", checked)
			}
			if _, err := c.GetFunction(ctx, tt.function); !errors.Is(err, catalog.ErrFunctionNotFound) {
				t.Errorf("a refused function was stored: %v", err)
			}
		})
	}
}

func TestEnv(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newCatalog(t)
	if _, _, err := c.PutFunction(ctx, "cfg", "function handle() end", catalog.FunctionOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetEnv(ctx, "cfg", "REGION", "eu-west", false); err != nil {
		t.Fatal(err)
	}
	if err := c.SetEnv(ctx, "cfg", "API_KEY", "sk-1", true); err != nil {
		t.Fatal(err)
	}
	env, err := c.GetEnv(ctx, "cfg")
	if err != nil || env.Values["REGION"] != "eu-west" || len(env.Secrets) != 1 || env.Secrets[0] != "API_KEY" || env.Values["API_KEY"] != "" {
		t.Errorf("GetEnv = %+v, %v; want the value, and the secret's name only", env, err)
	}
	refused := []struct {
		name, function, key string
		check               func(error) bool
	}{
		{"bad name", "cfg", "bad name", func(err error) bool { return errors.As(err, new(*catalog.InvalidOptionsError)) }},
		{"missing function", "nope", "X", func(err error) bool { return errors.Is(err, catalog.ErrFunctionNotFound) }},
	}
	for _, tt := range refused {
		if err := c.SetEnv(ctx, tt.function, tt.key, "x", false); !tt.check(err) {
			t.Errorf("%s: SetEnv = %v", tt.name, err)
		}
	}
	if err := c.DeleteEnv(ctx, "cfg", "REGION"); err != nil {
		t.Error(err)
	}
	if err := c.DeleteEnv(ctx, "cfg", "REGION"); !errors.Is(err, catalog.ErrEnvNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

func TestSchedules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newCatalog(t)
	if _, _, err := c.PutFunction(ctx, "f", "function handle() end", catalog.FunctionOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []catalog.Schedule{
		{Function: "f", Name: "a", Cron: "not cron"},
		{Function: "f", Name: "a", Cron: "* * * * *", Timezone: "Mars/Olympus"},
		{Function: "f", Name: "Bad Name", Cron: "* * * * *"},
	} {
		if _, _, err := c.PutSchedule(ctx, s); !errors.As(err, new(*catalog.InvalidScheduleError)) {
			t.Errorf("%+v: %v, want InvalidScheduleError", s, err)
		}
	}
	if _, _, err := c.PutSchedule(ctx, catalog.Schedule{Function: "nope", Name: "a", Cron: "@hourly"}); !errors.Is(err, catalog.ErrFunctionNotFound) {
		t.Errorf("schedule of a missing function: %v", err)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := c.PutSchedule(ctx, catalog.Schedule{Function: "f", Name: "berlin", Cron: "0 9 * * *", Timezone: "Europe/Berlin", Enabled: true})
	if err != nil || s.NextRunAt.In(berlin).Hour() != 9 {
		t.Errorf("a 9:00 Berlin schedule's next run: %v, %v", s.NextRunAt, err)
	}
	if list, err := c.ListSchedules(ctx, "f"); err != nil || len(list) != 1 || list[0].Name != "berlin" {
		t.Errorf("ListSchedules = %+v, %v", list, err)
	}
	if err := c.DeleteSchedule(ctx, "f", "berlin"); err != nil {
		t.Error(err)
	}
	if err := c.DeleteSchedule(ctx, "f", "berlin"); !errors.Is(err, catalog.ErrScheduleNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

func TestParseCron(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		expr, zone string
		want       time.Time
	}{
		{"*/5 * * * *", "UTC", from.Add(5 * time.Minute)},
		{"@every 10s", "UTC", from.Add(10 * time.Second)},
		{"30 * * * * *", "UTC", from.Add(30 * time.Second)},
		// 9:00 in Berlin is 8:00 UTC in December: the next is tomorrow's.
		{"0 9 * * *", "Europe/Berlin", time.Date(2026, 12, 8, 8, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		cron, err := catalog.ParseCron(tt.expr, tt.zone)
		if err != nil {
			t.Errorf("ParseCron(%q, %q): %v", tt.expr, tt.zone, err)
			continue
		}
		if got := cron.Next(from); !got.Equal(tt.want) {
			t.Errorf("ParseCron(%q, %q).Next = %v, want %v", tt.expr, tt.zone, got, tt.want)
		}
	}
}
