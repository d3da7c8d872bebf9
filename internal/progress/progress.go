// Package progress reports the progress of long work: a one-line bar with
// percentage, rate and ETA redrawn in place on a terminal, and plain log lines
// at a steady pace otherwise (files, pipes, CI logs).
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Bar tracks one piece of work of a known size. It is not safe for concurrent
// use.
type Bar struct {
	w       io.Writer
	label   string
	total   int
	tty     bool
	start   time.Time
	last    time.Time
	lastPct int
	now     func() time.Time
	width   int
	cols    int // the terminal's width; 0 when unknown
}

// New starts a bar of total units on w. Whether w is a terminal decides the
// style: a bar redrawn at most ten times a second, or a log line at every
// tenth of the work and at least every 30 s.
func New(w io.Writer, label string, total int) *Bar {
	b := &Bar{w: w, label: label, total: max(total, 0), tty: IsTerminal(w), now: time.Now, width: 24}
	if f, ok := w.(*os.File); ok && b.tty {
		b.cols = columns(f)
	}
	b.start = b.now()
	b.last = b.start
	b.lastPct = -1
	return b
}

// IsTerminal says whether w is a character device (a terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Update reports that done units are finished; status is a short note such
// as the current loss and accuracy.
func (b *Bar) Update(done int, status string) {
	now := b.now()
	pct := 100 * done / max(b.total, 1)
	if b.tty {
		if now.Sub(b.last) < 100*time.Millisecond && done < b.total {
			return
		}
		b.last = now
		fmt.Fprintf(b.w, "\r\033[K%s", fit(b.line(done, status, now), b.cols))
		return
	}
	decile := pct / 10
	if decile == b.lastPct && now.Sub(b.last) < 30*time.Second {
		return
	}
	b.lastPct, b.last = decile, now
	fmt.Fprintln(b.w, b.line(done, status, now))
}

// Finish ends the bar with a final line.
func (b *Bar) Finish(status string) {
	now := b.now()
	line := fmt.Sprintf("%s: done %d in %s", b.label, b.total, now.Sub(b.start).Round(time.Millisecond))
	if status != "" {
		line += "  " + status
	}
	if b.tty {
		fmt.Fprintf(b.w, "\r\033[K%s\n", line)
		return
	}
	fmt.Fprintln(b.w, line)
}

// fit cuts a line to cols-1 characters, so that it does not wrap: a wrapped
// line is not redrawn in place ("\r" returns to its last row only).
func fit(line string, cols int) string {
	if cols < 2 {
		return line
	}
	r := []rune(line)
	if len(r) <= cols-1 {
		return line
	}
	return string(r[:cols-1])
}

func (b *Bar) line(done int, status string, now time.Time) string {
	elapsed := now.Sub(b.start)
	frac := float64(done) / float64(max(b.total, 1))
	var sb strings.Builder
	sb.WriteString(b.label)
	sb.WriteString(" ")
	if b.tty {
		filled := int(frac * float64(b.width))
		sb.WriteString("[" + strings.Repeat("=", filled) + strings.Repeat(" ", b.width-filled) + "] ")
	}
	fmt.Fprintf(&sb, "%3.0f%% %d/%d", 100*frac, done, b.total)
	if done > 0 && elapsed > 0 {
		rate := float64(done) / elapsed.Seconds()
		eta := time.Duration(float64(b.total-done) / rate * float64(time.Second))
		if rate >= 1 {
			fmt.Fprintf(&sb, " %.0f/s", rate)
		} else {
			fmt.Fprintf(&sb, " %.1fs each", 1/rate) // slow work: "0/s" would say nothing
		}
		fmt.Fprintf(&sb, " ETA %s", eta.Round(time.Second))
	}
	if status != "" {
		sb.WriteString("  " + status)
	}
	return sb.String()
}
