package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestLogLines(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, "train", 100)
	clock := b.start
	b.now = func() time.Time { return clock }
	for i := 1; i <= 100; i++ {
		clock = clock.Add(10 * time.Millisecond)
		b.Update(i, "loss 0.5")
	}
	b.Finish("best 0.9")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	// One line per tenth (10%..100%) plus the final one; 100 steps in 1 s.
	if len(lines) != 12 {
		t.Fatalf("%d lines, want 12:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[5], "50% 50/100 100/s ETA 1s  loss 0.5") {
		t.Errorf("line %q lacks percentage, rate, ETA and status", lines[5])
	}
	if lines[11] != "train: done 100 in 1s  best 0.9" || strings.Contains(buf.String(), "\r") {
		t.Errorf("final line %q (or carriage returns in a log)", lines[11])
	}
}

func TestSlowWorkStillLogs(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, "eval", 1000)
	clock := b.start
	b.now = func() time.Time { return clock }
	for i := 1; i <= 5; i++ {
		clock = clock.Add(31 * time.Second)
		b.Update(i, "")
	}
	if n := strings.Count(buf.String(), "\n"); n != 5 {
		t.Errorf("%d lines for 5 updates 31 s apart within one tenth, want 5", n)
	}
}

func TestTerminalBar(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, "train", 4)
	b.tty = true
	clock := b.start
	b.now = func() time.Time { return clock }
	clock = clock.Add(time.Second)
	b.Update(2, "acc 0.7")
	if got := buf.String(); !strings.HasPrefix(got, "\r\033[Ktrain [============            ]  50% 2/4 2/s ETA 1s  acc 0.7") {
		t.Errorf("bar %q", got)
	}
}

// A bar wider than the terminal is cut short: a wrapped line would leave a
// row behind at every redraw.
func TestTerminalBarFitsTheWidth(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, "train", 4)
	b.tty, b.cols = true, 30
	clock := b.start
	b.now = func() time.Time { return clock }
	clock = clock.Add(time.Second)
	b.Update(2, "a long status that would wrap")
	if got := strings.TrimPrefix(buf.String(), "\r\033[K"); len(got) != 29 {
		t.Errorf("bar of %d characters on a 30-column terminal: %q", len(got), got)
	}
}

// No work done says so, and work slower than one unit a second shows the
// seconds each takes, not a rate of 0/s.
func TestEmptyAndSlowWork(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, "train", 0)
	b.Finish("")
	if got := strings.TrimSpace(buf.String()); got != "train: done 0 in 0s" {
		t.Errorf("empty work: %q", got)
	}
	buf.Reset()
	b = New(&buf, "maml", 100)
	clock := b.start
	b.now = func() time.Time { return clock }
	clock = clock.Add(30 * time.Second)
	b.Update(10, "")
	if !strings.Contains(buf.String(), "10/100 3.0s each ETA 4m30s") {
		t.Errorf("slow work: %q", buf.String())
	}
}
