package config

import (
	"regexp"
	"testing"
)

// The first back-quoted word of a flag's usage is its value's name in
// --help (urfave/cli takes it as the placeholder): a metavariable such as
// PATH, N or ZONE[=FILTER], never a bit of prose.
func TestUsagePlaceholders(t *testing.T) {
	quoted := regexp.MustCompile("`([^`]*)`")
	meta := regexp.MustCompile(`^[A-Z][A-Z0-9_:.\[\]=*|/-]*$`)
	tables := append(AllSpecs(), DNSHealthSpecs)
	for _, specs := range tables {
		for _, s := range specs {
			m := quoted.FindStringSubmatch(s.Usage)
			if m == nil {
				if s.Kind != KindBool {
					t.Errorf("--%s: no `VALUE` placeholder in its usage", s.Name)
				}
				continue
			}
			if !meta.MatchString(m[1]) {
				t.Errorf("--%s: placeholder %q is not a metavariable: %s", s.Name, m[1], s.Usage)
			}
		}
	}
}
