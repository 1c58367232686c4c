package executor

import "time"

// wireMessage is what crosses a sandbox child's stdin and stdout,
// gob-encoded; exactly one field is set. Cancels travel alone on the
// control pipe (fd 3) as wireCancel.
//
// Runs are numbered by the parent, increasing on each child. The child
// answers each with one wireResult, in the order the runs came: its
// outcome, or Dropped for a run cancelled before it started.
type wireMessage struct {
	Run    *wireRun       // parent -> child: run an invocation
	Result *wireResult    // child -> parent: the run's outcome
	Call   *wireHostCall  // child -> parent: a host API call of the run
	Reply  *wireHostReply // parent -> child: its answer
}

type wireRun struct {
	ID       uint64
	Function Function
	Request  Request // without Host
	HasHost  bool
	Limits   Limits
	// Deadline is the caller's ctx deadline as time left when the run was
	// sent (0 for none): the run may wait in the child's queue, and its
	// Limits.Timeout counts from its start, the deadline from now.
	Deadline time.Duration
}

type wireCancel struct {
	ID     uint64
	Reason string
}

type wireResult struct {
	ID     uint64
	Result Result
	Retire bool // the child exits after this result (its memory grew)
	// Dropped: a cancel found the run queued, and it never started.
	Dropped bool
}

type wireHostCall struct {
	RunID   uint64 // the run making it, the one running
	CallID  uint64
	Method  string
	Args    []byte
	Timeout time.Duration
}

type wireHostReply struct {
	CallID uint64
	Result []byte
	Error  string
}
