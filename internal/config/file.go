package config

import (
	"encoding"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/BurntSushi/toml"
)

// Problem is one mistake in the configuration: the key at fault and, when
// the file set it, the line.
type Problem struct {
	File string // "" on built-in defaults
	Line int    // 0 when not known
	Key  string // "limits.timeout"; "" for the file as a whole
	Err  error
}

func (p Problem) Error() string {
	var b strings.Builder
	b.WriteString("config")
	if p.File != "" {
		b.WriteString(" " + p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
	}
	b.WriteString(": ")
	if p.Key != "" {
		b.WriteString(p.Key + ": ")
	}
	b.WriteString(p.Err.Error())
	return b.String()
}

// Errors is every problem Load found, one per line of its message, so that
// one run of check-config shows them all.
type Errors []Problem

func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, p := range e {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// fileReader fills a Config from a TOML file one key at a time. A plain
// toml.Decode stops at the first value it cannot store; this goes on to the
// end, so that every unknown key and every bad value is named. Only a
// syntax error stops it: past one, the rest of the file cannot be read.
type fileReader struct {
	md    toml.MetaData
	prims map[string]toml.Primitive // every key decoded, tables too, for line
	probs []Problem
}

func readFile(file string, c *Config) (*fileReader, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", file, err)
	}
	var top map[string]toml.Primitive
	md, err := toml.Decode(string(data), &top)
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return nil, Errors{{File: file, Line: pe.Position.Line, Err: errors.New(pe.Message)}}
	}
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", file, err)
	}
	r := &fileReader{md: md, prims: map[string]toml.Primitive{}}
	r.table(nil, top, reflect.ValueOf(c).Elem())
	return r, nil
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// table stores each key of a table into the field of v that has its name.
func (r *fileReader) table(path toml.Key, keys map[string]toml.Primitive, v reflect.Value) {
	for name, p := range keys {
		key := append(path[:len(path):len(path)], name)
		r.prims[key.String()] = p
		f, ok := field(v, name)
		switch {
		case !ok:
			r.probs = append(r.probs, Problem{Key: key.String(), Err: errors.New("unknown key")})
		case f.Kind() == reflect.Struct && !reflect.PointerTo(f.Type()).Implements(textUnmarshaler):
			var sub map[string]toml.Primitive
			if err := r.md.PrimitiveDecode(p, &sub); err != nil {
				r.probs = append(r.probs, Problem{Key: key.String(), Err: errors.New("want a table")})
				continue
			}
			r.table(key, sub, f)
		default:
			if err := r.md.PrimitiveDecode(p, f.Addr().Interface()); err != nil {
				r.probs = append(r.probs, Problem{Key: key.String(), Err: valueError(err, f.Type())})
			}
		}
	}
}

// field is the field of struct v whose toml tag is name.
func field(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		if t.Field(i).IsExported() && tag == name && tag != "-" {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// valueError says what is wrong with a value: the parser's own words when
// a value of the right type was refused ("invalid duration"), else what the
// key wants.
func valueError(err error, t reflect.Type) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return errors.New(pe.Message)
	}
	want := "a table"
	switch {
	case t.Kind() == reflect.String, reflect.PointerTo(t).Implements(textUnmarshaler):
		want = "a string"
	case t.Kind() == reflect.Bool:
		want = "true or false"
	case t.Kind() == reflect.Int, t.Kind() == reflect.Int64:
		want = "an integer"
	case t.Kind() == reflect.Slice:
		want = "an array of strings"
	}
	return errors.New("want " + want)
}

// line is where key is in the file, 0 if the file does not set it. The
// parser keeps positions to itself and tells them only in its errors: the
// key is decoded into a value that refuses everything, and the error says
// where the key is.
func (r *fileReader) line(key string) int {
	p, ok := r.prims[key]
	if !ok {
		return 0
	}
	var pe toml.ParseError
	if err := r.md.PrimitiveDecode(p, &refuser{}); errors.As(err, &pe) {
		return pe.Position.Line
	}
	return 0
}

type refuser struct{}

func (*refuser) UnmarshalTOML(any) error { return errors.New("refused") }
