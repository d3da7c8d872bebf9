package eval

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// sample has a text column, an all-numeric column, a mixed column and one
// cell with characters that need escaping in markdown and LaTeX.
func sample() *Table {
	return &Table{
		Title:  "Results",
		Header: []string{"model", "acc", "note"},
		Rows: [][]string{
			{"proto|net", "81.20", "5%"},
			{"maml_x", "9", "n/a"},
		},
		Notes: []string{"10 seeds"},
	}
}

func render(t *testing.T, tb *Table, f Format) string {
	t.Helper()
	var b bytes.Buffer
	if err := tb.Render(&b, f); err != nil {
		t.Fatalf("Render(%s): %v", f, err)
	}
	return b.String()
}

func TestRenderMarkdown(t *testing.T) {
	want := "**Results**\n" +
		"\n" +
		"| model | acc | note |\n" +
		"| --- | ---: | --- |\n" +
		"| proto\\|net | 81.20 | 5% |\n" +
		"| maml_x | 9 | n/a |\n" +
		"\n" +
		"10 seeds\n"
	if got := render(t, sample(), Markdown); got != want {
		t.Errorf("markdown:\n%s\nwant:\n%s", got, want)
	}
}

func TestRenderCSV(t *testing.T) {
	tb := sample()
	tb.Rows = append(tb.Rows, []string{`say "hi", ok`, "1", ""})
	want := "model,acc,note\n" +
		"proto|net,81.20,5%\n" +
		"maml_x,9,n/a\n" +
		`"say ""hi"", ok",1,` + "\n"
	if got := render(t, tb, CSV); got != want {
		t.Errorf("csv:\n%s\nwant:\n%s", got, want)
	}
}

func TestRenderJSON(t *testing.T) {
	tb := sample()
	tb.Rows[1][1] = "+9" // parses as a number but is not JSON syntax
	want := `{
  "title": "Results",
  "columns": [
    "model",
    "acc",
    "note"
  ],
  "rows": [
    {
      "model": "proto|net",
      "acc": 81.20,
      "note": "5%"
    },
    {
      "model": "maml_x",
      "acc": 9,
      "note": "n/a"
    }
  ],
  "notes": [
    "10 seeds"
  ]
}
`
	got := render(t, tb, JSON)
	if got != want {
		t.Errorf("json:\n%s\nwant:\n%s", got, want)
	}
	if !json.Valid([]byte(got)) {
		t.Error("output is not valid JSON")
	}
}

func TestRenderJSONEdgeCases(t *testing.T) {
	tb := &Table{Header: []string{"a", "b"}, Rows: [][]string{{"NaN", `q"`}}}
	want := `{
  "title": "",
  "columns": [
    "a",
    "b"
  ],
  "rows": [
    {
      "a": "NaN",
      "b": "q\""
    }
  ],
  "notes": []
}
`
	if got := render(t, tb, JSON); got != want {
		t.Errorf("json:\n%s\nwant:\n%s", got, want)
	}
	dup := &Table{Header: []string{"a", "a"}}
	if err := dup.Render(&bytes.Buffer{}, JSON); err == nil {
		t.Error("duplicate column names: want error")
	}
}

func TestRenderLaTeX(t *testing.T) {
	want := `% Results
\begin{tabular}{lrl}
\hline
model & acc & note \\
\hline
proto\textbar{}net & 81.20 & 5\% \\
maml\_x & 9 & n/a \\
\hline
\multicolumn{3}{l}{10 seeds} \\
\end{tabular}
`
	if got := render(t, sample(), LaTeX); got != want {
		t.Errorf("latex:\n%s\nwant:\n%s", got, want)
	}
}

func TestEscapeLaTeX(t *testing.T) {
	in := `a&b%c$d#e_f{g}h~i^j\k`
	want := `a\&b\%c\$d\#e\_f\{g\}h\textasciitilde{}i\textasciicircum{}j\textbackslash{}k`
	if got := EscapeLaTeX(in); got != want {
		t.Errorf("EscapeLaTeX(%q) = %q, want %q", in, got, want)
	}
	if got := EscapeLaTeX("x<y>z\nw"); got != `x\textless{}y\textgreater{}z w` {
		t.Errorf("EscapeLaTeX symbols/newline = %q", got)
	}
	// compare's marks and notes: no text-mode glyph in LaTeX's utf8 input.
	if got := EscapeLaTeX("▲ ▼ 1.96·sd/√n"); got != `\ensuremath{\uparrow} \ensuremath{\downarrow} 1.96·sd/\ensuremath{\surd}n` {
		t.Errorf("EscapeLaTeX marks = %q", got)
	}
	// The interval notes' minus sign (U+2212), which pdflatex refuses as text.
	if got := EscapeLaTeX("n−1 degrees"); got != `n\ensuremath{-}1 degrees` {
		t.Errorf("EscapeLaTeX minus = %q", got)
	}
}

// A row whose first cell starts with [ or * would be read as the optional
// argument (or star) of the previous row's \\.
func TestLaTeXRowStartingWithABracket(t *testing.T) {
	tb := &Table{Header: []string{"class", "n"}, Rows: [][]string{{"normal", "1"}, {"[unknown]", "2"}, {"*misc", "3"}}}
	got := render(t, tb, LaTeX)
	if !strings.Contains(got, "normal & 1 \\\\\n{}[unknown] & 2 \\\\\n{}*misc & 3 \\\\\n") {
		t.Errorf("latex:\n%s", got)
	}
}

// Label columns stay text in JSON however their names look; the other
// columns give numbers.
func TestJSONLabelsStayText(t *testing.T) {
	tb := &Table{Labels: 1, Header: []string{"run", "acc"}, Rows: [][]string{{"007", "0.5"}, {"1e3", "0.25"}}}
	got := render(t, tb, JSON)
	for _, want := range []string{`"run": "007"`, `"run": "1e3"`, `"acc": 0.5`, `"acc": 0.25`} {
		if !strings.Contains(got, want) {
			t.Errorf("json lacks %s:\n%s", want, got)
		}
	}
}

func TestEscapeMarkdown(t *testing.T) {
	if got := escapeMarkdown("a|b\nc"); got != `a\|b<br>c` {
		t.Errorf("escapeMarkdown = %q", got)
	}
}

func TestRenderTerminal(t *testing.T) {
	tb := sample()
	tb.Header[1] = "acc_mean" // would be rewritten by tablewriter's header auto-format
	got := render(t, tb, Terminal)
	if !strings.HasPrefix(got, "Results\n") {
		t.Errorf("title not on the first line:\n%s", got)
	}
	if !strings.HasSuffix(got, "10 seeds\n") {
		t.Errorf("note not under the table:\n%s", got)
	}
	for _, cell := range append(append([]string{}, tb.Header...), append(tb.Rows[0], tb.Rows[1]...)...) {
		if !strings.Contains(got, cell) {
			t.Errorf("terminal output lacks %q:\n%s", cell, got)
		}
	}
	// The numeric column is right-aligned: "9" is padded on the left to the
	// width of "acc_mean".
	if !strings.Contains(got, "        9 ") {
		t.Errorf("numeric column not right-aligned:\n%s", got)
	}
}

func TestRenderRowLengthMismatch(t *testing.T) {
	tb := sample()
	tb.Rows = append(tb.Rows, []string{"only", "two"})
	for _, f := range Formats() {
		err := tb.Render(&bytes.Buffer{}, f)
		if err == nil || !strings.Contains(err.Error(), "row 2") {
			t.Errorf("%s: error %v, want one naming row 2", f, err)
		}
	}
}

func TestRenderNoHeaderAndBadFormat(t *testing.T) {
	if err := (&Table{}).Render(&bytes.Buffer{}, CSV); err == nil {
		t.Error("empty header: want error")
	}
	if err := sample().Render(&bytes.Buffer{}, Format("html")); err == nil {
		t.Error("unknown format: want error")
	}
}

func TestParseFormat(t *testing.T) {
	for _, f := range Formats() {
		got, err := ParseFormat(strings.ToUpper(string(f)))
		if err != nil || got != f {
			t.Errorf("ParseFormat(%q) = %q, %v", f, got, err)
		}
	}
	_, err := ParseFormat("xml")
	if err == nil {
		t.Fatal("ParseFormat(xml): want error")
	}
	for _, s := range []string{`"xml"`, "table", "json", "csv", "markdown", "latex"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %s", err, s)
		}
	}
}
