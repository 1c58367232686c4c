package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/picloud/picloud/queue"
)

// maxStatsWindow bounds GET /v1/stats: the query reads every invocation
// that finished in the window.
const maxStatsWindow = 7 * 24 * time.Hour

// StatsSource is what the API needs for /v1/stats: *queue.Client.
type StatsSource interface {
	Stats(ctx context.Context, window, bucket time.Duration) (queue.Stats, error)
}

// StatusCountsBody counts finished invocations by final status.
type StatusCountsBody struct {
	Succeeded int `json:"succeeded" example:"118"`
	Failed    int `json:"failed" example:"2"`
	TimedOut  int `json:"timed_out" example:"0"`
	Cancelled int `json:"cancelled" example:"0"`
}

// StatsBucketBody is the invocations that finished in one bucket.
type StatsBucketBody struct {
	Start time.Time `json:"start" doc:"Start of the bucket; it ends bucket_seconds later."`
	StatusCountsBody
}

// LastInvocationBody is a function's newest invocation.
type LastInvocationBody struct {
	ID        int64     `json:"id" example:"42"`
	Status    string    `json:"status" enum:"queued,running,succeeded,failed,timed_out,cancelled"`
	CreatedAt time.Time `json:"created_at"`
}

// FunctionStatsBody is one function's share of the window.
type FunctionStatsBody struct {
	Function string `json:"function" example:"hello"`
	StatusCountsBody
	LastInvocation *LastInvocationBody `json:"last_invocation,omitempty" doc:"The function's newest invocation, in or before the window, in any status; absent when it was never invoked."`
}

// StatsBody summarises the invocations that finished in a window.
type StatsBody struct {
	Window        string              `json:"window" example:"1h" doc:"The window asked for."`
	BucketSeconds int                 `json:"bucket_seconds" example:"60" doc:"Width of each bucket."`
	Since         time.Time           `json:"since" doc:"Start of the first bucket."`
	Until         time.Time           `json:"until" doc:"End of the last bucket, which holds the present and is still filling."`
	Buckets       []StatsBucketBody   `json:"buckets" doc:"Invocations by the bucket they finished in, oldest first; every bucket is present, empty ones with zeros."`
	Totals        StatusCountsBody    `json:"totals" doc:"Sum over the buckets."`
	Functions     []FunctionStatsBody `json:"functions" doc:"Every existing function by name, with the invocations of it that finished in the window."`
}

type statsInput struct {
	Window string `query:"window" default:"1h" pattern:"^[0-9]+(m|h)$" example:"1h" doc:"How far back to count, in minutes or hours (e.g. 15m, 1h, 24h; at most 168h)."`
	Bucket string `query:"bucket" pattern:"^[0-9]+(m|h)$" example:"1m" doc:"Bucket width, a whole number of minutes or hours; by default the window divided into 60, rounded down to a minute, and at least one minute."`
}

type statsOutput struct {
	Body StatsBody
}

func (s *Server) registerStats() {
	register(s.api, huma.Operation{
		OperationID: "get-stats",
		Method:      http.MethodGet,
		Path:        "/v1/stats",
		Summary:     "Count recent invocations",
		Description: "Throughput and outcomes over a recent window: the invocations that finished in it, by time bucket and by final status, " +
			"and per function together with each function's newest invocation. Queued and running invocations are not counted until they finish. " +
			"Buckets are aligned to multiples of their width, so successive calls line up.",
		Tags:   []string{"invocations"},
		Errors: []int{http.StatusUnprocessableEntity},
	}, s.getStats)
}

func (s *Server) getStats(ctx context.Context, in *statsInput) (*statsOutput, error) {
	window, err := time.ParseDuration(in.Window)
	if err != nil || window <= 0 || window > maxStatsWindow {
		return nil, huma.Error422UnprocessableEntity(fmt.Sprintf("window must be between 1m and %v, like 1h", maxStatsWindow))
	}
	bucket := window / 60
	if in.Bucket != "" {
		if bucket, err = time.ParseDuration(in.Bucket); err != nil || bucket <= 0 || bucket > window {
			return nil, huma.Error422UnprocessableEntity("bucket must be at least 1m and no wider than the window")
		}
		if window/bucket > 1440 {
			return nil, huma.Error422UnprocessableEntity("bucket is too narrow for the window: at most 1440 buckets")
		}
	}
	st, err := s.config.Stats.Stats(ctx, window, bucket)
	if err != nil {
		return nil, s.internal(ctx, err)
	}
	out := &statsOutput{Body: StatsBody{
		Window: in.Window, BucketSeconds: int(st.Bucket / time.Second), Since: st.Since, Until: st.Until,
		Totals:    StatusCountsBody(st.Totals),
		Buckets:   make([]StatsBucketBody, len(st.Buckets)),
		Functions: make([]FunctionStatsBody, len(st.Functions)),
	}}
	for i, b := range st.Buckets {
		out.Body.Buckets[i] = StatsBucketBody{Start: b.Start, StatusCountsBody: StatusCountsBody(b.StatusCounts)}
	}
	for i, f := range st.Functions {
		fb := FunctionStatsBody{Function: f.Function, StatusCountsBody: StatusCountsBody(f.StatusCounts)}
		if f.LastID != 0 {
			fb.LastInvocation = &LastInvocationBody{ID: f.LastID, Status: string(f.LastStatus), CreatedAt: f.LastCreatedAt}
		}
		out.Body.Functions[i] = fb
	}
	return out, nil
}
