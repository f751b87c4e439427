package main

import (
	"strconv"
	"strings"
	"time"
)

// Chain mode starts a process per connection, so its start path is kept
// lean: parseChain reads the chain flags straight from policySpecs without
// building urfave/cli's application. Anything it does not understand (help,
// version, an unknown flag, a bad value) makes it step aside, and the cli
// application parses the same arguments and gives the usual answers.

// fastOptions holds the values parseChain read.
type fastOptions map[string][]string

// parseChain splits args into chain-mode options and PROGRAM's argv
// (everything from the first argument that is not a flag, or after "--").
func parseChain(args []string) (fastOptions, []string, bool) {
	o := fastOptions{}
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
		name = spec.name
		if spec.kind == kindBool {
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
		if !validValue(spec.kind, value) {
			return nil, nil, false
		}
		if spec.kind == kindList {
			// As urfave/cli does with slice values.
			o[name] = append(o[name], strings.TrimSpace(value))
		} else {
			o[name] = []string{value}
		}
	}
	return o, nil, true
}

func lookupSpec(name string) *flagSpec {
	if long, ok := flagAliases[name]; ok {
		name = long
	}
	for _, specs := range allSpecs() {
		for i := range specs {
			if specs[i].name == name {
				return &specs[i]
			}
		}
	}
	return nil
}

func validValue(k kind, v string) bool {
	switch k {
	case kindInt:
		_, err := strconv.ParseInt(v, 0, 64)
		return err == nil
	case kindDuration:
		_, err := parseDuration(v)
		return err == nil
	}
	return true
}

func (o fastOptions) value(name string) string {
	if v, ok := o[name]; ok {
		return v[len(v)-1]
	}
	if s := lookupSpec(name); s != nil {
		return s.def
	}
	return ""
}

func (o fastOptions) String(name string) string        { return o.value(name) }
func (o fastOptions) StringSlice(name string) []string { return o[name] }
func (o fastOptions) Bool(name string) bool            { return o.value(name) == "true" }

func (o fastOptions) Int(name string) int {
	n, _ := strconv.ParseInt(o.value(name), 0, 64)
	return int(n)
}

func (o fastOptions) Duration(name string) time.Duration {
	d, _ := parseDuration(o.value(name))
	return d
}
