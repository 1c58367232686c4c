package executor

import "time"

// wireMessage is what crosses a sandbox child's stdin and stdout,
// gob-encoded; exactly one field is set. Cancels travel alone on the
// control pipe (fd 3) as wireCancel.
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
}

type wireCancel struct {
	ID     uint64
	Reason string
}

type wireResult struct {
	ID     uint64
	Result Result
	Retire bool // the child exits after this result (its memory grew)
}

type wireHostCall struct {
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
