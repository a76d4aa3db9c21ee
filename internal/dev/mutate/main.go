// Command mutate measures how well the unit tests of flatnet's pure core
// guard it: `make mutate` runs it. For each package it runs gremlins
// (pinned in tools.mod beside this file), which changes the source one
// operator at a time (a < for a <=, a && for a ||, a + for a -, a break
// for a continue, ...) in a copy of the module and runs that package's
// unit tests against each change; a mutant the tests fail on is killed, one
// they pass on survived. gremlins tests only the mutants inside the blocks
// its coverage profile marks as run, which leaves out a switch's case
// expressions and constant declarations: those it calls not covered are
// tested here, one at a time, through go test's -overlay (the mutated file
// in place of the real one, nothing copied or written in the tree).
//
// The score of a package is the killed mutants (a mutant that makes the
// tests hang counts as killed) over all of them but those listed in
// equivalent.txt: mutants that cannot change what the program does (a
// bound that no input reaches, a check another check already makes),
// each with the reason. Survivors, listed with their source line, are
// what a new test must kill or equivalent.txt must explain.
//
// Usage: go run ./internal/dev/mutate [-min 90] [-workers n] [package...]
// from the module's root; packages are directories under internal/,
// default hostlocal statedir config daemon reconcile cni.
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// core is the pure core whose score docs/testing.md keeps.
var core = []string{"hostlocal", "statedir", "config", "daemon", "reconcile", "cni"}

// mutators are gremlins' mutators turned on besides its defaults
// (arithmetic, conditional boundaries and negations, increments,
// negatives).
var mutators = []string{"--invert-logical", "--invert-loopctrl", "--invert-bwassign", "--invert-bitwise", "--remove-self-assignments"}

const equivalentFile = "internal/dev/mutate/equivalent.txt"

// reuse, when set, is where gremlins' reports of an earlier run are.
var reuse string

func main() {
	minScore := flag.Float64("min", 90, "fail when a package scores below this percentage")
	workers := flag.Int("workers", runtime.NumCPU(), "mutants tested at once")
	flag.StringVar(&reuse, "reuse", "", "read gremlins' reports from this pattern (%s: the package) instead of running it")
	flag.Parse()
	pkgs := flag.Args()
	if len(pkgs) == 0 {
		pkgs = core
	}
	if err := run(pkgs, *workers, *minScore); err != nil {
		fmt.Fprintln(os.Stderr, "mutate:", err)
		os.Exit(1)
	}
}

// mutant is one change gremlins made, and what the tests made of it.
type mutant struct {
	Type   string `json:"type"`
	Status string `json:"status"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
	file   string // relative to the module's root
	text   string // the source line, trimmed
	col    int    // the column counted from the first non-blank character
	fn     string // the function it is in ("-" outside any), and which of its lines with that text: "Parse:2"
}

// report is the part of gremlins' JSON output read here.
type report struct {
	Files []struct {
		Name      string   `json:"file_name"`
		Mutations []mutant `json:"mutations"`
	} `json:"files"`
}

// result is one package's count.
type result struct {
	pkg                                              string
	killed, lived, notCovered, equivalent, notViable int
	survivors                                        []mutant
}

func (r result) score() float64 {
	n := r.killed + r.lived + r.notCovered - r.equivalent
	if n == 0 {
		return 100
	}
	return 100 * float64(r.killed) / float64(n)
}

func run(pkgs []string, workers int, minScore float64) error {
	eq, err := readEquivalents(equivalentFile)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "flatnet-mutate-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	var results []result
	used := map[string]bool{}
	for _, p := range pkgs {
		r, err := mutatePackage(p, workers, tmp, eq, used)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	for k := range eq {
		if !used[k] && slices.ContainsFunc(pkgs, func(p string) bool { return strings.HasPrefix(k, "internal/"+p+"/") }) {
			fmt.Printf("note: %s lists a mutant gremlins no longer makes: %s\n", equivalentFile, k)
		}
	}

	fmt.Printf("\nmutation score, %s, gremlins with %s (%s):\n\n", time.Now().UTC().Format("2006-01-02"), strings.Join(mutators, " "), time.Since(start).Round(time.Second))
	fmt.Println("| package | mutants | killed | survived | equivalent | score |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: |")
	var low []string
	for _, r := range results {
		fmt.Printf("| %s | %d | %d | %d | %d | %.1f %% |\n", r.pkg, r.killed+r.lived+r.notCovered, r.killed,
			r.lived+r.notCovered-r.equivalent, r.equivalent, r.score())
		if r.score() < minScore {
			low = append(low, r.pkg)
		}
	}
	for _, r := range results {
		if len(r.survivors) == 0 {
			continue
		}
		fmt.Printf("\n%s: %d survivors\n", r.pkg, len(r.survivors))
		for _, m := range r.survivors {
			fmt.Printf("  %s:%d:%d %s\n    %s %s %s %d\n    > %s\n", m.file, m.Line, m.Column, m.Status, m.file, m.fn, m.Type, m.col, m.text)
		}
	}
	if len(low) > 0 {
		return fmt.Errorf("below %.0f %%: %s", minScore, strings.Join(low, ", "))
	}
	return nil
}

// mutatePackage runs gremlins over internal/<pkg> and sorts its mutants.
func mutatePackage(pkg string, workers int, tmp string, eq map[string]string, used map[string]bool) (result, error) {
	r := result{pkg: pkg}
	dir := filepath.Join("internal", pkg)
	out := filepath.Join(tmp, pkg+".json")
	args := []string{"tool", "-modfile=internal/dev/mutate/tools.mod", "gremlins", "unleash", "--silent",
		"--workers", strconv.Itoa(workers), "--timeout-coefficient", "10", "-o", out}
	args = append(append(args, mutators...), "./"+dir)
	var buf bytes.Buffer
	t0 := time.Now()
	if reuse != "" {
		out = fmt.Sprintf(reuse, pkg)
	} else {
		fmt.Printf("mutate: %s: go %s\n", pkg, strings.Join(args, " "))
		cmd := exec.Command("go", args...)
		cmd.Stdout, cmd.Stderr = &buf, &buf
		if err := cmd.Run(); err != nil {
			return r, fmt.Errorf("gremlins on %s: %w\n%s", dir, err, buf.String())
		}
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return r, fmt.Errorf("gremlins on %s wrote no report: %w\n%s", dir, err, buf.String())
	}
	var rep report
	if err := json.Unmarshal(data, &rep); err != nil {
		return r, fmt.Errorf("gremlins' report on %s: %w", dir, err)
	}
	lines := map[string][]string{}
	where := map[string]map[int]string{}
	var uncovered []mutant
	for _, f := range rep.Files {
		file := filepath.Join(dir, f.Name)
		if _, ok := lines[file]; !ok {
			src, err := os.ReadFile(file)
			if err != nil {
				return r, err
			}
			lines[file] = strings.Split(string(src), "\n")
			where[file] = places(file, lines[file])
		}
		for _, m := range f.Mutations {
			m.file = file
			m.fn = cmp.Or(where[file][m.Line], "-")
			if m.Line >= 1 && m.Line <= len(lines[file]) {
				raw := lines[file][m.Line-1]
				m.text = strings.TrimSpace(raw)
				m.col = m.Column - (len(raw) - len(strings.TrimLeft(raw, " \t")))
			}
			if m.Status == "NOT COVERED" {
				uncovered = append(uncovered, m)
				continue
			}
			if err := r.add(m, eq, used); err != nil {
				return r, err
			}
		}
	}
	if len(uncovered) > 0 {
		fmt.Printf("mutate: %s: %d mutants gremlins' coverage leaves out, tested through -overlay\n", pkg, len(uncovered))
		for i, status := range testUncovered(dir, uncovered, lines, workers, tmp) {
			m := uncovered[i]
			m.Status = status
			if err := r.add(m, eq, used); err != nil {
				return r, err
			}
		}
	}
	slices.SortFunc(r.survivors, func(a, b mutant) int {
		if c := strings.Compare(a.file, b.file); c != 0 {
			return c
		}
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	fmt.Printf("mutate: %s: %d mutants in %s\n", pkg, r.killed+r.lived+r.notCovered, time.Since(t0).Round(time.Second))
	return r, nil
}

// add counts m in r.
func (r *result) add(m mutant, eq map[string]string, used map[string]bool) error {
	switch m.Status {
	case "KILLED", "TIMED OUT":
		r.killed++
		return nil
	case "NOT VIABLE", "SKIPPED":
		r.notViable++
		return nil
	case "LIVED":
		r.lived++
	case "NOT COVERED":
		r.notCovered++
	default:
		return fmt.Errorf("%s:%d: unknown status %q", m.file, m.Line, m.Status)
	}
	if k := m.key(); eq[k] != "" {
		used[k] = true
		r.equivalent++
		return nil
	}
	r.survivors = append(r.survivors, m)
	return nil
}

// replacements are gremlins' mutations (its engine's mappings), by
// mutator and the operator's text.
var replacements = map[string]map[string]string{
	"ARITHMETIC_BASE":         {"+": "-", "*": "/", "/": "*", "%": "*", "-": "+"},
	"CONDITIONALS_BOUNDARY":   {">=": ">", ">": ">=", "<=": "<", "<": "<="},
	"CONDITIONALS_NEGATION":   {"==": "!=", "!=": "==", ">=": "<", ">": "<=", "<=": ">", "<": ">="},
	"INCREMENT_DECREMENT":     {"++": "--", "--": "++"},
	"INVERT_ASSIGNMENTS":      {"+=": "-=", "*=": "/=", "/=": "*=", "-=": "+="},
	"INVERT_BITWISE":          {"&": "|", "|": "&", "^": "&", "&^": "&", "<<": ">>", ">>": "<<"},
	"INVERT_BWASSIGN":         {"&=": "|=", "|=": "&=", "^=": "&=", "&^=": "&=", "<<=": ">>=", ">>=": "<<="},
	"INVERT_LOGICAL":          {"&&": "||", "||": "&&"},
	"INVERT_LOOPCTRL":         {"break": "continue", "continue": "break"},
	"INVERT_NEGATIVES":        {"-": "+"},
	"REMOVE_SELF_ASSIGNMENTS": {"+=": "=", "-=": "=", "*=": "=", "/=": "=", "%=": "=", "&=": "=", "|=": "=", "^=": "=", "&^=": "=", "<<=": "=", ">>=": "="},
}

// operators are the texts a mutant may start with, longest first.
var operators = []string{"continue", "break", "&^=", "<<=", ">>=", "&&", "||", "&^", "<<", ">>", "<=", ">=", "==", "!=",
	"++", "--", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "+", "-", "*", "/", "%", "&", "|", "^", "<", ">"}

// mutate returns the source src (split in lines) with m applied.
func mutate(src []string, m mutant) (string, error) {
	if m.Line < 1 || m.Line > len(src) || m.Column < 1 || m.Column > len(src[m.Line-1]) {
		return "", fmt.Errorf("%s:%d:%d: no such position", m.file, m.Line, m.Column)
	}
	line := src[m.Line-1]
	at := line[m.Column-1:]
	for _, op := range operators {
		if !strings.HasPrefix(at, op) {
			continue
		}
		to, ok := replacements[m.Type][op]
		if !ok {
			continue
		}
		out := slices.Clone(src)
		out[m.Line-1] = line[:m.Column-1] + to + at[len(op):]
		text := strings.Join(out, "\n")
		if x, y, ok := binaryAt(src, m); ok {
			// A binary operator: the mutated expression keeps its
			// operands, as gremlins changes the syntax tree, whatever the
			// new operator's precedence (a || b && c is not (a || b) && c).
			orig := strings.Join(src, "\n")
			text = orig[:x] + "(" + orig[x:y] + ")" + orig[y:]
			off := x + 1 + lineOffset(src, m.Line) + m.Column - 1 - x
			text = text[:off] + to + text[off+len(op):]
		}
		return text, nil
	}
	return "", fmt.Errorf("%s:%d:%d: no operator %s can change in %q", m.file, m.Line, m.Column, m.Type, at)
}

// lineOffset is the byte offset of line n (1-based) in src joined.
func lineOffset(src []string, n int) int {
	off := 0
	for _, l := range src[:n-1] {
		off += len(l) + 1
	}
	return off
}

// binaryAt returns the byte offsets of the binary expression whose
// operator m mutates, when it is one.
func binaryAt(src []string, m mutant) (from, to int, ok bool) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, m.file, strings.Join(src, "\n"), parser.SkipObjectResolution)
	if err != nil {
		return 0, 0, false
	}
	ast.Inspect(f, func(n ast.Node) bool {
		if b, isBin := n.(*ast.BinaryExpr); isBin && !ok {
			p := fset.Position(b.OpPos)
			if p.Line == m.Line && p.Column == m.Column {
				from, to, ok = fset.Position(b.Pos()).Offset, fset.Position(b.End()).Offset, true
			}
		}
		return !ok
	})
	return from, to, ok
}

// testUncovered runs the package's tests against each of ms, applied
// through an overlay, workers at a time, and returns their statuses.
func testUncovered(dir string, ms []mutant, lines map[string][]string, workers int, tmp string) []string {
	out := make([]string, len(ms))
	sem := make(chan struct{}, max(workers, 1))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = testOne(dir, m, lines[m.file], filepath.Join(tmp, fmt.Sprintf("overlay-%d", i)))
		}()
	}
	wg.Wait()
	return out
}

// testOne tests one mutant through go test -overlay in work.
func testOne(dir string, m mutant, src []string, work string) string {
	text, err := mutate(src, m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutate:", err)
		return "NOT VIABLE"
	}
	if err := os.MkdirAll(work, 0o700); err != nil {
		return "NOT VIABLE"
	}
	defer os.RemoveAll(work)
	abs, err := filepath.Abs(m.file)
	if err != nil {
		return "NOT VIABLE"
	}
	mutated := filepath.Join(work, filepath.Base(m.file))
	overlay := filepath.Join(work, "overlay.json")
	o, _ := json.Marshal(map[string]map[string]string{"Replace": {abs: mutated}})
	if os.WriteFile(mutated, []byte(text), 0o600) != nil || os.WriteFile(overlay, o, 0o600) != nil {
		return "NOT VIABLE"
	}
	if exec.Command("go", "build", "-overlay", overlay, "./"+dir).Run() != nil {
		return "NOT VIABLE" // the compiler refuses it
	}
	cmd := exec.Command("go", "test", "-count=1", "-timeout", "5m", "-overlay", overlay, "./"+dir)
	if err := cmd.Run(); err != nil {
		return "KILLED"
	}
	return "LIVED"
}

// key names a mutant by what does not move when lines are added above
// it: file, function and which of its lines with that text, mutator,
// column in its trimmed line, and that line.
func (m mutant) key() string {
	return fmt.Sprintf("%s %s %s %d\n%s", m.file, m.fn, m.Type, m.col, m.text)
}

// places names each line of a Go file by its function and which of that
// function's lines with the same trimmed text it is: "Parse:2".
func places(file string, src []string) map[int]string {
	out := map[int]string{}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, strings.Join(src, "\n"), parser.SkipObjectResolution)
	if err != nil {
		return out
	}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok {
			continue
		}
		name := fd.Name.Name
		if fd.Recv != nil && len(fd.Recv.List) > 0 {
			t := fd.Recv.List[0].Type
			if st, ok := t.(*ast.StarExpr); ok {
				t = st.X
			}
			if id, ok := t.(*ast.Ident); ok {
				name = id.Name + "." + name
			}
		}
		seen := map[string]int{}
		for l := fset.Position(fd.Pos()).Line; l <= fset.Position(fd.End()).Line && l <= len(src); l++ {
			text := strings.TrimSpace(src[l-1])
			seen[text]++
			out[l] = fmt.Sprintf("%s:%d", name, seen[text])
		}
	}
	return out
}

// readEquivalents reads equivalent.txt: for each mutant, the comment
// lines that say why it is equivalent, then "file function:N MUTATOR
// column" (the function, and which of its lines with that text it is; the
// column counted from the line's first non-blank character, 1 for it),
// then "> " and the source line, trimmed.
func readEquivalents(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	eq := map[string]string{}
	var why []string
	var head string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			why = nil
		case strings.HasPrefix(line, "#"):
			why = append(why, strings.TrimSpace(strings.TrimPrefix(line, "#")))
		case strings.HasPrefix(line, "> "):
			if head == "" {
				return nil, fmt.Errorf("%s:%d: a source line without its mutant", path, n)
			}
			if len(why) == 0 {
				return nil, fmt.Errorf("%s:%d: no reason given", path, n)
			}
			eq[head+"\n"+strings.TrimPrefix(line, "> ")] = strings.Join(why, " ")
			head = ""
		default:
			if len(strings.Fields(line)) != 4 {
				return nil, fmt.Errorf("%s:%d: want \"file function:N MUTATOR column\", have %q", path, n, line)
			}
			head = line
		}
	}
	if head != "" {
		return nil, errors.New(path + ": the last mutant has no source line")
	}
	return eq, sc.Err()
}
