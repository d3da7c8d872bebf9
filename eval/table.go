// Package eval holds the metrics and result renderers used by the harness.
package eval

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
)

// Format selects how a Table is rendered.
type Format string

const (
	// Terminal is named for what it produces, since the identifier Table is
	// taken by the type below; its flag value is still "table".
	Terminal Format = "table"    // box-drawn table (tablewriter)
	JSON     Format = "json"     // object with title, columns, rows, notes
	CSV      Format = "csv"      // header row plus data rows; title and notes dropped
	Markdown Format = "markdown" // GitHub pipe table
	LaTeX    Format = "latex"    // tabular environment
)

// Formats lists every supported format, in the order used in messages.
func Formats() []Format {
	return []Format{Terminal, JSON, CSV, Markdown, LaTeX}
}

// ParseFormat maps a user-supplied name (case-insensitive) to a Format.
func ParseFormat(s string) (Format, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	for _, f := range Formats() {
		if name == string(f) {
			return f, nil
		}
	}
	return "", unknownFormat(s)
}

func unknownFormat(s string) error {
	valid := make([]string, 0, len(Formats()))
	for _, f := range Formats() {
		valid = append(valid, string(f))
	}
	return fmt.Errorf("eval: unknown format %q (valid: %s)", s, strings.Join(valid, ", "))
}

// Table is a rectangular grid of already-formatted cells. Keeping cells as
// strings lets callers choose precision once and have every format agree.
type Table struct {
	Title  string
	Header []string
	Rows   [][]string
	Notes  []string // printed under the table; omitted in CSV
	// Labels is how many leading columns hold names (runs, classes, files):
	// text in every format, even when a name looks like a number ("007").
	Labels int
}

// Render writes t to w in format f. Every row must have as many cells as
// the header.
func (t *Table) Render(w io.Writer, f Format) error {
	if err := t.validate(); err != nil {
		return err
	}
	switch f {
	case Terminal:
		return t.renderTerminal(w)
	case JSON:
		return t.renderJSON(w)
	case CSV:
		return t.renderCSV(w)
	case Markdown:
		return t.renderMarkdown(w)
	case LaTeX:
		return t.renderLaTeX(w)
	}
	return unknownFormat(string(f))
}

func (t *Table) validate() error {
	if len(t.Header) == 0 {
		return fmt.Errorf("eval: table %q has no header", t.Title)
	}
	for i, row := range t.Rows {
		if len(row) != len(t.Header) {
			return fmt.Errorf("eval: table %q: row %d has %d cells, header has %d",
				t.Title, i, len(row), len(t.Header))
		}
	}
	return nil
}

// parseNumber reports whether a cell reads as a finite number. NaN and Inf
// are excluded because JSON cannot represent them.
func parseNumber(s string) (float64, bool) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}

// numericColumns marks columns whose non-empty body cells are all numbers
// (and that have at least one). Alignment is per column in every target
// format, so a single text cell keeps the whole column left-aligned.
func (t *Table) numericColumns() []bool {
	out := make([]bool, len(t.Header))
	for c := t.Labels; c < len(t.Header); c++ {
		seen := false
		numeric := true
		for _, row := range t.Rows {
			cell := strings.TrimSpace(row[c])
			if cell == "" {
				continue
			}
			seen = true
			if _, ok := parseNumber(cell); !ok {
				numeric = false
				break
			}
		}
		out[c] = seen && numeric
	}
	return out
}

func (t *Table) renderTerminal(w io.Writer) error {
	aligns := make([]tw.Align, len(t.Header))
	for c, num := range t.numericColumns() {
		aligns[c] = tw.AlignLeft
		if num {
			aligns[c] = tw.AlignRight
		}
	}
	tbl := tablewriter.NewTable(w,
		// The default header formatting upper-cases names and turns '_' and
		// '.' into spaces, which would misreport metric names.
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithRowAlignmentConfig(tw.CellAlignment{Global: tw.AlignLeft, PerColumn: aligns}),
	)
	if t.Title != "" {
		if _, err := fmt.Fprintln(w, t.Title); err != nil {
			return err
		}
	}
	tbl.Header(t.Header)
	for _, row := range t.Rows {
		if err := tbl.Append(row); err != nil {
			return err
		}
	}
	if err := tbl.Render(); err != nil {
		return err
	}
	for _, n := range t.Notes {
		if _, err := fmt.Fprintln(w, n); err != nil {
			return err
		}
	}
	return nil
}

func (t *Table) renderCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(t.Header); err != nil {
		return err
	}
	if err := cw.WriteAll(t.Rows); err != nil { // WriteAll flushes
		return err
	}
	return cw.Error()
}

// renderJSON builds the document by hand because rows must be objects whose
// keys keep column order, which a Go map cannot do.
func (t *Table) renderJSON(w io.Writer) error {
	seen := make(map[string]bool, len(t.Header))
	for _, h := range t.Header {
		if seen[h] {
			return fmt.Errorf("eval: table %q: duplicate column %q cannot be a JSON key", t.Title, h)
		}
		seen[h] = true
	}
	var b bytes.Buffer
	b.WriteString(`{"title":`)
	writeJSONString(&b, t.Title)
	b.WriteString(`,"columns":[`)
	for i, h := range t.Header {
		if i > 0 {
			b.WriteByte(',')
		}
		writeJSONString(&b, h)
	}
	b.WriteString(`],"rows":[`)
	for i, row := range t.Rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('{')
		for c, cell := range row {
			if c > 0 {
				b.WriteByte(',')
			}
			writeJSONString(&b, t.Header[c])
			b.WriteByte(':')
			if c < t.Labels {
				writeJSONString(&b, cell)
			} else {
				writeJSONValue(&b, cell)
			}
		}
		b.WriteByte('}')
	}
	b.WriteString(`],"notes":[`)
	for i, n := range t.Notes {
		if i > 0 {
			b.WriteByte(',')
		}
		writeJSONString(&b, n)
	}
	b.WriteString("]}")

	var out bytes.Buffer
	if err := json.Indent(&out, b.Bytes(), "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err := w.Write(out.Bytes())
	return err
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s) // a string always marshals
	b.Write(enc)
}

// writeJSONValue emits numeric cells as JSON numbers. The cell's own text is
// kept when it is already a valid JSON number (so "0.50" stays 0.50);
// forms JSON rejects, such as "+1" or ".5", are rewritten canonically.
func writeJSONValue(b *bytes.Buffer, cell string) {
	v, ok := parseNumber(cell)
	if !ok {
		writeJSONString(b, cell)
		return
	}
	s := strings.TrimSpace(cell)
	if enc, err := json.Marshal(json.Number(s)); err == nil {
		b.Write(enc)
		return
	}
	b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
}

func (t *Table) renderMarkdown(w io.Writer) error {
	var b strings.Builder
	if t.Title != "" {
		fmt.Fprintf(&b, "**%s**\n\n", t.Title)
	}
	writeMarkdownRow(&b, t.Header)
	b.WriteString("|")
	for _, num := range t.numericColumns() {
		if num {
			b.WriteString(" ---: |")
		} else {
			b.WriteString(" --- |")
		}
	}
	b.WriteString("\n")
	for _, row := range t.Rows {
		writeMarkdownRow(&b, row)
	}
	for _, n := range t.Notes {
		fmt.Fprintf(&b, "\n%s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeMarkdownRow(b *strings.Builder, cells []string) {
	b.WriteString("|")
	for _, c := range cells {
		b.WriteString(" ")
		b.WriteString(escapeMarkdown(c))
		b.WriteString(" |")
	}
	b.WriteString("\n")
}

// escapeMarkdown keeps a cell inside its column: '|' would split it and a
// newline would end the table.
func escapeMarkdown(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "\r\n", "<br>")
	return strings.ReplaceAll(s, "\n", "<br>")
}

// renderLaTeX writes a bare tabular so it can be \input into any float; the
// title becomes a comment because captions belong to the surrounding float.
// Notes go in full-width rows under the rule so they travel with the table.
func (t *Table) renderLaTeX(w io.Writer) error {
	var b strings.Builder
	if t.Title != "" {
		for _, line := range strings.Split(t.Title, "\n") {
			fmt.Fprintf(&b, "%% %s\n", line)
		}
	}
	spec := make([]byte, len(t.Header))
	for c, num := range t.numericColumns() {
		spec[c] = 'l'
		if num {
			spec[c] = 'r'
		}
	}
	fmt.Fprintf(&b, "\\begin{tabular}{%s}\n\\hline\n", spec)
	writeLaTeXRow(&b, t.Header)
	b.WriteString("\\hline\n")
	for _, row := range t.Rows {
		writeLaTeXRow(&b, row)
	}
	b.WriteString("\\hline\n")
	for _, n := range t.Notes {
		fmt.Fprintf(&b, "\\multicolumn{%d}{l}{%s} \\\\\n", len(t.Header), EscapeLaTeX(n))
	}
	b.WriteString("\\end{tabular}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func writeLaTeXRow(b *strings.Builder, cells []string) {
	for i, c := range cells {
		if i > 0 {
			b.WriteString(" & ")
		}
		e := EscapeLaTeX(c)
		if i == 0 && (strings.HasPrefix(e, "[") || strings.HasPrefix(e, "*")) {
			// The previous row's \\ would read it as its optional argument.
			b.WriteString("{}")
		}
		b.WriteString(e)
	}
	b.WriteString(" \\\\\n")
}

// latexMath are the symbols LaTeX's utf8 input does not know in text mode,
// as math-mode commands. The minus sign is one: pdflatex stops at the "n−1"
// of the interval notes.
var latexMath = map[rune]string{
	'▲': `\uparrow`, '▼': `\downarrow`, '√': `\surd`, '→': `\rightarrow`,
	'≈': `\approx`, 'ε': `\varepsilon`, 'λ': `\lambda`, 'Δ': `\Delta`,
	'−': `-`,
}

// EscapeLaTeX makes s safe as text-mode LaTeX. It works rune by rune so the
// braces it introduces (e.g. \textbackslash{}) are not escaped again.
func EscapeLaTeX(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '&', '%', '$', '#', '_', '{', '}':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '~':
			b.WriteString(`\textasciitilde{}`)
		case '^':
			b.WriteString(`\textasciicircum{}`)
		case '\\':
			b.WriteString(`\textbackslash{}`)
		// '|', '<' and '>' print as other glyphs under the default OT1 font
		// encoding, so they get named symbols too.
		case '|':
			b.WriteString(`\textbar{}`)
		case '<':
			b.WriteString(`\textless{}`)
		case '>':
			b.WriteString(`\textgreater{}`)
		case '\n', '\r':
			b.WriteByte(' ') // a raw newline is harmless but a blank line would end the row
		default:
			if m, ok := latexMath[r]; ok {
				b.WriteString(`\ensuremath{` + m + `}`)
			} else {
				b.WriteRune(r)
			}
		}
	}
	return b.String()
}
