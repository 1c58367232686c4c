package executor

import (
	"encoding/json"
	"testing"
)

func TestStructuredLogFields(t *testing.T) {
	p := newTestPool(t, 1)
	res := runSource(t, p, `function handle()
  log.info("order placed", {order = 42, items = {"a", "b"}})
  log.warn("plain", "words")
  print("print", {not_fields = true})
  log.error("nul", {k = "a\0b"})
end`)
	if res.Status != Succeeded || len(res.Logs) != 4 {
		t.Fatalf("%s %q %+v", res.Status, res.Error, res.Logs)
	}
	var fields map[string]any
	if err := json.Unmarshal(res.Logs[0].Fields, &fields); err != nil || res.Logs[0].Message != "order placed" || fields["order"] != float64(42) {
		t.Errorf("log.info with fields = %+v", res.Logs[0])
	}
	if res.Logs[1].Message != "plain\twords" || res.Logs[1].Fields != nil {
		t.Errorf("log.warn without fields = %+v", res.Logs[1])
	}
	if res.Logs[2].Fields != nil || res.Logs[2].Message[:6] != "print\t" {
		t.Errorf("print took a table as fields: %+v", res.Logs[2])
	}
	if string(res.Logs[3].Fields) != `{"k":"a\ufffdb"}` {
		t.Errorf("NUL in fields = %s", res.Logs[3].Fields)
	}
}
