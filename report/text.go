package report

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"
)

// printable makes a string from the network safe to show to a person: line breaks, tabs and other control characters
// become visible escapes (\n, \x1b), so a hostile name can neither break a table's rows nor send escape sequences to
// a terminal; bidirectional-text controls become \u escapes, so text cannot be made to read backwards; bytes that are
// not UTF-8 become U+FFFD.
func printable(s string) string {
	clean := utf8.ValidString(s)
	for _, r := range s {
		if !clean || needsEscape(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x100 && needsEscape(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case needsEscape(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func needsEscape(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || unicode.Is(unicode.Bidi_Control, r)
}

// printableDocument returns a deep copy of the document with every string made printable, for the formats people
// read.
func printableDocument(doc Document) (Document, error) {
	b, err := json.Marshal(doc)
	if err != nil {
		return Document{}, err
	}
	var out Document
	if err := json.Unmarshal(b, &out); err != nil {
		return Document{}, err
	}
	makePrintable(reflect.ValueOf(&out).Elem())
	return out, nil
}

// printableStream makes a streamed document printable: its run and summary as printableDocument does, and each host
// as it is read back. The hosts are changed in place, which is safe because the spool decodes a fresh copy of each.
func printableStream(doc streamDocument) (streamDocument, error) {
	head, err := printableDocument(Document{Schema: doc.Schema, Run: doc.Run, Summary: doc.Summary})
	if err != nil {
		return streamDocument{}, err
	}
	doc.Schema, doc.Run, doc.Summary = head.Schema, head.Run, head.Summary
	hosts := doc.Hosts
	doc.Hosts = func(yield func(HostRecord) bool) {
		for h := range hosts {
			makePrintable(reflect.ValueOf(&h).Elem())
			if !yield(h) {
				return
			}
		}
	}
	return doc, nil
}

// makePrintable rewrites every string reachable from v in place.
func makePrintable(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		if v.CanSet() {
			v.SetString(printable(v.String()))
		}
	case reflect.Pointer:
		if !v.IsNil() {
			makePrintable(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				makePrintable(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			makePrintable(v.Index(i))
		}
	}
}
