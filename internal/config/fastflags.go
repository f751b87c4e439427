package config

import (
	"strconv"
	"strings"
	"time"
)

// Chain mode starts a process per connection, so its start path is kept
// lean: ParseChain reads the chain flags straight from the Spec tables, and
// cmd/mxfront does not link urfave/cli at all. Anything it does not
// understand (help, an unknown flag, a bad value) makes it step aside:
// mxfront then execs mxfront-cli, whose urfave/cli application parses the
// same arguments and gives the usual answers.

// FastOptions holds the values ParseChain read.
type FastOptions map[string][]string

// ParseChain splits args into chain-mode options and PROGRAM's argv
// (everything from the first argument that is not a flag, or after "--").
func ParseChain(args []string) (FastOptions, []string, bool) {
	o := FastOptions{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return o, args[i+1:], true
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			return o, args[i:], true
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "---") {
			return nil, nil, false
		}
		spec := lookupSpec(name)
		if spec == nil {
			return nil, nil, false
		}
		name = spec.Name
		if spec.Kind == KindBool {
			if hasValue {
				b, err := strconv.ParseBool(value)
				if err != nil {
					return nil, nil, false
				}
				value = strconv.FormatBool(b)
			} else {
				value = "true"
			}
		} else if !hasValue {
			if i+1 >= len(args) {
				return nil, nil, false
			}
			i++
			value = args[i]
		}
		if !validValue(spec.Kind, value) {
			return nil, nil, false
		}
		if spec.Kind == KindList {
			// As urfave/cli does with slice values.
			o[name] = append(o[name], strings.TrimSpace(value))
		} else {
			o[name] = []string{value}
		}
	}
	return o, nil, true
}

func lookupSpec(name string) *Spec {
	for _, a := range Aliases {
		if a.Short == name {
			name = a.Long
			break
		}
	}
	for _, specs := range AllSpecs() {
		for i := range specs {
			if specs[i].Name == name {
				return &specs[i]
			}
		}
	}
	return nil
}

func validValue(k Kind, v string) bool {
	switch k {
	case KindInt:
		_, err := strconv.ParseInt(v, 0, 64)
		return err == nil
	case KindDuration:
		_, err := ParseDuration(v)
		return err == nil
	}
	return true
}

func (o FastOptions) value(name string) string {
	if v, ok := o[name]; ok {
		return v[len(v)-1]
	}
	if s := lookupSpec(name); s != nil {
		return s.Default
	}
	return ""
}

func (o FastOptions) String(name string) string        { return o.value(name) }
func (o FastOptions) StringSlice(name string) []string { return o[name] }
func (o FastOptions) Bool(name string) bool            { return o.value(name) == "true" }

func (o FastOptions) Int(name string) int {
	n, _ := strconv.ParseInt(o.value(name), 0, 64)
	return int(n)
}

func (o FastOptions) Duration(name string) time.Duration {
	d, _ := ParseDuration(o.value(name))
	return d
}
