package main

import (
	"bytes"
	"fmt"
	"go/scanner"
	"go/token"
	"regexp"
	"sort"
	"strings"
)

// spellings are the ways a name is written: as is (shop, my-shop), capitalised in prose
// (Shop, My-shop, or the -title given), in environment variable names (SHOP, MY_SHOP),
// and inside Go identifiers (shopName, myShopName, newShop, newMyShop).
type spellings struct {
	lower, title, upperSnake, lowerCamel, upperCamel string
}

func spell(name, title string) spellings {
	parts := strings.Split(name, "-")
	var camel strings.Builder
	for _, p := range parts {
		camel.WriteString(strings.ToUpper(p[:1]) + p[1:])
	}
	upperCamel := camel.String()
	if title == "" {
		title = strings.ToUpper(name[:1]) + name[1:]
	}
	return spellings{
		lower:      name,
		title:      title,
		upperSnake: strings.ToUpper(strings.Join(parts, "_")),
		lowerCamel: strings.ToLower(upperCamel[:1]) + upperCamel[1:],
		upperCamel: upperCamel,
	}
}

// rewriter replaces the module path and the app name in one pass over a file, so that a
// new module path containing the old name is never rewritten a second time.
type rewriter struct {
	oldModule, newModule string
	old, new             spellings
	re                   *regexp.Regexp
}

func newRewriter(oldModule, newModule, oldName, newName, title string) *rewriter {
	// Every spelling of the old name, case-insensitively: its hyphens may be written
	// _ or left out.
	name := strings.ReplaceAll(regexp.QuoteMeta(oldName), "-", "[-_]?")
	return &rewriter{
		oldModule: oldModule, newModule: newModule,
		old: spell(oldName, ""), new: spell(newName, title),
		re: regexp.MustCompile(regexp.QuoteMeta(oldModule) + "|(?i:" + name + ")"),
	}
}

type fileResult struct {
	fileChange
	kept      []string
	unmatched []string
}

// rewrite returns b with the module path and the name replaced. The module path counts
// only when no longer path continues it. The name counts as a word of its own, or as a
// word of a Go identifier, never inside another word. azure.yaml's template line and
// mentions of "<Name> template" are kept: they say where the app came from.
func (rw *rewriter) rewrite(rel string, b []byte) ([]byte, fileResult) {
	var res fileResult
	var out bytes.Buffer
	var idents []span
	if strings.HasSuffix(rel, ".go") {
		idents = identifiers(b)
	}
	last := 0
	for _, m := range rw.re.FindAllIndex(b, -1) {
		start, end := m[0], m[1]
		text := string(b[start:end])
		var repl string
		if text == rw.oldModule {
			if continuesPath(b, end) {
				continue
			}
			repl = rw.newModule
			res.Module++
		} else {
			var ok bool
			repl, ok = rw.name(text, before(b, start), after(b, end), inside(idents, start))
			if !ok {
				continue
			}
			if (rel == "azure.yaml" && onTemplateLine(b, start)) || bytes.HasPrefix(b[end:], []byte(" template")) {
				res.kept = append(res.kept, fmt.Sprintf("%s line %d: %q names the template the app was created from", rel, lineOf(b, start), text))
				continue
			}
			if repl == "" {
				res.unmatched = append(res.unmatched, fmt.Sprintf("line %d: %s", lineOf(b, start), text))
				continue
			}
			res.Name++
		}
		if repl == text { // renamed to itself
			if text == rw.oldModule {
				res.Module--
			} else {
				res.Name--
			}
			continue
		}
		out.Write(b[last:start])
		out.WriteString(repl)
		last = end
	}
	if res.Module+res.Name == 0 {
		return b, res
	}
	out.Write(b[last:])
	return out.Bytes(), res
}

// name returns the new spelling for an occurrence of the old name between the bytes prev
// and next (0 at either end of the file), inIdent when it is part of a Go identifier. ok
// is false when the occurrence is part of another word; repl is "" when it is a word but
// in a case not recognised.
func (rw *rewriter) name(text string, prev, next byte, inIdent bool) (repl string, ok bool) {
	o, n := rw.old, rw.new
	if inIdent {
		// An identifier holds no hyphen or space: the name is written camel-case.
		n.lower, n.title = n.lowerCamel, n.upperCamel
	}
	switch {
	case text == o.upperSnake && !isAlnum(prev) && !isAlnum(next):
		return n.upperSnake, true
	case text == o.lower && !isAlnum(prev):
		switch {
		case isUpper(next): // shopName
			return n.lowerCamel, true
		case !isAlnum(next):
			return n.lower, true
		}
	case text == o.title && !isUpper(prev) && !isDigit(prev):
		switch {
		case isUpper(next) || (isLower(prev) && !isAlnum(next)): // ShopName, newShop
			return n.upperCamel, true
		case !isAlnum(next):
			return n.title, true
		}
	case text == o.lowerCamel && !isAlnum(prev) && !isLower(next) && !isDigit(next):
		return n.lowerCamel, true
	case text == o.upperCamel && !isUpper(prev) && !isDigit(prev) && !isLower(next) && !isDigit(next):
		return n.upperCamel, true
	case !isAlnum(prev) && !isAlnum(next):
		return "", true
	}
	return "", false
}

// before returns the byte before at, reading an escape such as \n as a separator.
func before(b []byte, at int) byte {
	if at == 0 || (at >= 2 && b[at-2] == '\\' && isLower(b[at-1])) {
		return 0
	}
	return b[at-1]
}

func after(b []byte, at int) byte {
	if at >= len(b) {
		return 0
	}
	return b[at]
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlnum(c byte) bool { return isLower(c) || isUpper(c) || isDigit(c) }

// continuesPath reports whether b[at:] carries on the path element that ends at at, as
// in a longer module path; a full stop ending a sentence does not.
func continuesPath(b []byte, at int) bool {
	if at >= len(b) {
		return false
	}
	switch c := b[at]; {
	case isAlnum(c):
		return true
	case c == '.' || c == '_' || c == '-' || c == '~':
		return at+1 < len(b) && isAlnum(b[at+1])
	}
	return false
}

var templateLineRE = regexp.MustCompile(`^\s*template:`)

func onTemplateLine(b []byte, at int) bool {
	start := bytes.LastIndexByte(b[:at], '\n') + 1
	return templateLineRE.Match(b[start:at])
}

func lineOf(b []byte, at int) int {
	return bytes.Count(b[:at], []byte{'\n'}) + 1
}

// span is a byte range [start, end).
type span struct{ start, end int }

// identifiers returns the byte ranges of the identifiers in Go source, in order. Source
// that does not scan gives what was scanned before the error.
func identifiers(src []byte) []span {
	fset := token.NewFileSet()
	file := fset.AddFile("", fset.Base(), len(src))
	var s scanner.Scanner
	s.Init(file, src, nil, 0)
	var spans []span
	for {
		pos, tok, lit := s.Scan()
		if tok == token.EOF {
			return spans
		}
		if tok == token.IDENT {
			off := file.Offset(pos)
			spans = append(spans, span{off, off + len(lit)})
		}
	}
}

// inside reports whether at falls within one of the sorted spans.
func inside(spans []span, at int) bool {
	i := sort.Search(len(spans), func(i int) bool { return spans[i].end > at })
	return i < len(spans) && spans[i].start <= at
}
