package metrics

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mxfront/mxfront/internal/sanitize"
)

// Handler serves /metrics (Prometheus text, or OpenMetrics when asked),
// /healthz (200 while serve accepts, 503 once it stops) and / (the status
// page, for a person).
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		EnableOpenMetrics: true, MaxRequestsInFlight: 4, Timeout: 10 * time.Second,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !m.accepting.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not accepting")
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /{$}", m.servePage)
	return mux
}

func (m *Metrics) servePage(w http.ResponseWriter, _ *http.Request) {
	var b bytes.Buffer
	if err := page.Execute(&b, m.pageData(m.now())); err != nil {
		http.Error(w, "status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// Nothing from elsewhere, no script: the page is its own HTML and CSS.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write(b.Bytes())
}

type pageData struct {
	Version, Started, Uptime, Now string
	Windows                       []string
	HasStats                      bool
	Conns, Refusing, Children     int
	Rows                          []countRow // connections by outcome and decider
	Total, Refusals               countRow
	Zones                         []zoneRow
	Watched                       bool // the lists' health is known
	Greylist                      []countRow
	StoreErrors                   countRow
	StoreSize                     string // "" when not counted
	Reload                        string
	Recent                        []refusalRow
}

// countRow is one count over the windows and since start.
type countRow struct {
	Key, Name string
	Counts    [4]uint64 // windowSpans, then since start
}

type zoneRow struct {
	Name                             string
	Health, HealthClass, Hint        string    // "" when not watched
	Lookups, Listed, Timeouts, Fails [2]uint64 // the last hour, since start
	Latency                          [2]string // mean, uncached
}

type refusalRow struct {
	At, IP, HELO, By, Code, Reason string
}

func (m *Metrics) pageData(now time.Time) pageData {
	c := m.counted(now)
	d := pageData{
		Version: m.version, Started: m.start.UTC().Format(time.RFC3339), Now: now.UTC().Format(time.RFC3339),
		Uptime: now.Sub(m.start).Round(time.Second).String(),
	}
	for _, s := range windowSpans {
		d.Windows = append(d.Windows, s.name)
	}
	sum := func(key, name string, idx []int) countRow {
		r := countRow{Key: key, Name: name}
		for w := range windowSpans {
			for _, i := range idx {
				r.Counts[w] += c.over(w, i)
			}
		}
		for _, i := range idx {
			r.Counts[len(windowSpans)] += c.over(-1, i)
		}
		return r
	}
	m.mu.Lock()
	cats := append([]*category(nil), m.cats...)
	m.mu.Unlock()
	sortCategories(cats)
	var all, refusals []int
	for _, k := range cats {
		name := k.outcome
		if k.by != "" {
			name += ": " + k.by
		}
		all = append(all, k.idx)
		if r := sum(k.outcome+"/"+k.by, name, []int{k.idx}); r.Counts[len(windowSpans)] > 0 {
			d.Rows = append(d.Rows, r) // a person reads only what happened
		}
		if k.outcome == "refused" || k.outcome == "rejected" {
			refusals = append(refusals, k.idx)
		}
	}
	d.Total = sum("total", "all connections", all)
	d.Refusals = sum("refusals", "refused or rejected", refusals)
	for _, z := range m.zones {
		zr := zoneRow{Name: z.name}
		for j, w := range []int{1, -1} { // the last hour, since start
			zr.Lookups[j] = c.over(w, z.idx+zLookups)
			zr.Listed[j] = c.over(w, z.idx+zListed)
			zr.Timeouts[j] = c.over(w, z.idx+zTimeouts)
			zr.Fails[j] = c.over(w, z.idx+zFailed)
			zr.Latency[j] = mean(c.over(w, z.idx+zMicros), c.over(w, z.idx+zTimed))
		}
		d.Zones = append(d.Zones, zr)
	}
	m.zoneHealth(d.Zones)
	d.Watched = m.lists != nil
	for s := range greyNames {
		d.Greylist = append(d.Greylist, sum("greylist/"+greyNames[s], greyNames[s], []int{greyBase + s}))
	}
	d.StoreErrors = sum("greylist-store-errors", "store errors", []int{gStoreErrors})
	d.StoreSize = m.storeLine()
	if m.stats != nil {
		st := m.stats()
		d.HasStats, d.Conns, d.Refusing, d.Children = true, st.Conns, st.Refusing, st.Children
	}
	d.Reload = "none since start"
	if r := m.reload.Load(); r != nil {
		d.Reload = "ok at " + r.at.UTC().Format(time.RFC3339)
		if r.err != "" {
			d.Reload = "failed at " + r.at.UTC().Format(time.RFC3339) + " (the old lists stay): " + sanitize.Text(r.err, sanitize.MaxReason)
		}
	}
	for _, r := range m.recent.list() {
		rr := refusalRow{At: r.at.UTC().Format("2006-01-02 15:04:05"), IP: r.ip.String(),
			HELO: sanitize.Text(r.helo, sanitize.MaxField), By: r.outcome + ": " + r.by,
			Reason: sanitize.Text(strings.Join(r.reasons, "; "), 2*sanitize.MaxReason)}
		if r.code != 0 {
			rr.Code = fmt.Sprint(r.code)
		}
		if r.outcome == "rejected" {
			rr.Reason = "limit: " + r.by
		}
		d.Recent = append(d.Recent, rr)
	}
	return d
}

// zoneHealth fills in each zone's health, from serve.ListHealth.
func (m *Metrics) zoneHealth(rows []zoneRow) {
	if m.lists == nil {
		return
	}
	for _, z := range m.lists() {
		i := slices.IndexFunc(rows, func(r zoneRow) bool { return r.Name == z.Zone })
		if i < 0 {
			continue
		}
		r := &rows[i]
		switch {
		case z.Aside != nil:
			a := z.Aside
			r.Health, r.HealthClass = "set aside", "bad"
			if a.Asked {
				r.Health = "failing (still asked)"
			}
			r.Health += " since " + a.Since.UTC().Format("2006-01-02 15:04:05") + " by " + a.By.String() + ": " + a.Reason
			r.Hint = a.Hint
		case z.Checked.IsZero():
			r.Health, r.HealthClass = "in use (not checked yet)", "ok"
		default:
			r.Health, r.HealthClass = "ok (checked "+z.Checked.UTC().Format("15:04:05")+")", "ok"
		}
		r.Health = sanitize.Text(r.Health, 2*sanitize.MaxReason)
	}
}

// storeLine is the greylist store's size for the page.
func (m *Metrics) storeLine() string {
	if m.store == nil {
		return ""
	}
	at, st, err := m.store.get()
	s := "not counted yet"
	if !at.IsZero() {
		s = fmt.Sprintf("%d networks, %s (counted %s)", st.Records, bytesText(st.Bytes), at.UTC().Format("15:04:05"))
	}
	if err != "" {
		s += "; the last count failed: " + sanitize.Text(err, sanitize.MaxReason)
	}
	return s
}

// bytesText is a size for a person.
func bytesText(n int64) string {
	switch {
	case n >= 10<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 10<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// sortCategories orders the connection rows: by outcome as Outcome lists
// them, then by the check or limit.
func sortCategories(cats []*category) {
	rank := map[string]int{}
	for i, o := range outcomeNames {
		rank[o] = i
	}
	sort.Slice(cats, func(i, j int) bool {
		if a, b := rank[cats[i].outcome], rank[cats[j].outcome]; a != b {
			return a < b
		}
		return cats[i].by < cats[j].by
	})
}

// mean is a mean latency from summed microseconds, or "-".
func mean(micros, n uint64) string {
	if n == 0 {
		return "-"
	}
	d := time.Duration(micros/n) * time.Microsecond
	if d >= time.Millisecond {
		return d.Round(100 * time.Microsecond).String()
	}
	return d.String()
}

var page = template.Must(template.New("page").Parse(pageHTML))

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="60">
<title>mxfront serve: status</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 72em; padding: 0 1em; color: #1c1c1c; background: #fbfbf8; }
h1 { font-size: 1.4em; margin-bottom: .2em; }
h2 { font-size: 1.1em; margin: 1.6em 0 .4em; border-bottom: 1px solid #ccc; }
p.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .2em .6em; border-bottom: 1px solid #e4e4e0; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.sum th, tr.sum td { font-weight: bold; border-top: 2px solid #bbb; }
td.reason { word-break: break-word; }
.open span { display: inline-block; margin-right: 2em; }
.open b { font-size: 1.3em; }
small { color: #666; }
td.ok { color: #1d6b2f; }
td.bad { color: #a3241b; font-weight: bold; }
</style>
</head>
<body>
<h1>mxfront serve</h1>
<p class="meta">version <span id="version">{{.Version}}</span> &middot; up <span id="uptime">{{.Uptime}}</span> (since {{.Started}}) &middot; page made {{.Now}}</p>
{{if .HasStats}}<p class="open" id="open"><span>connections open <b data-open="conns">{{.Conns}}</b></span><span>refusal dialogues <b data-open="refusing">{{.Refusing}}</b></span><span>PROGRAMs running <b data-open="children">{{.Children}}</b></span></p>{{end}}

<h2>Connections</h2>
<table id="connections">
<tr><th>outcome: decided by</th>{{range .Windows}}<th class="n">{{.}}</th>{{end}}<th class="n">since start</th></tr>
{{range .Rows}}<tr data-row="{{.Key}}"><th>{{.Name}}</th>{{range .Counts}}<td class="n">{{.}}</td>{{end}}</tr>
{{end}}<tr class="sum" data-row="{{.Refusals.Key}}"><th>{{.Refusals.Name}}</th>{{range .Refusals.Counts}}<td class="n">{{.}}</td>{{end}}</tr>
<tr class="sum" data-row="{{.Total.Key}}"><th>{{.Total.Name}}</th>{{range .Total.Counts}}<td class="n">{{.}}</td>{{end}}</tr>
</table>
<p><small>Only what happened since start is listed. A window of D counts from the newest snapshot at least D old (snapshots each minute, each hour for the day), or since start.</small></p>

<h2>DNS lists</h2>
{{if .Zones}}<table id="dns">
<tr><th>zone</th>{{if .Watched}}<th>health</th>{{end}}<th class="n">lookups (hour)</th><th class="n">listed</th><th class="n">timeouts</th><th class="n">other errors</th><th class="n">mean latency</th><th class="n">lookups (since start)</th><th class="n">listed</th><th class="n">timeouts</th><th class="n">other errors</th><th class="n">mean latency</th></tr>
{{range .Zones}}<tr data-zone="{{.Name}}"><th>{{.Name}}</th>{{if $.Watched}}<td class="{{.HealthClass}}" data-health="{{.Name}}">{{.Health}}{{if .Hint}}<br><small>{{.Hint}}</small>{{end}}</td>{{end}}{{template "zone" .}}</tr>
{{end}}</table>
<p><small>Other errors: error answers (127.255.255.x: the list refuses your resolver), SERVFAIL, REFUSED, unusable answers. Latency of uncached lookups, to the zone's last answer.{{if .Watched}} A list set aside is not asked for clients (and refuses none) until it passes its RFC 5782 health check again.{{end}}</small></p>
{{else}}<p>No DNS list is configured.</p>{{end}}

<h2>Greylist</h2>
<table id="greylist">
<tr><th>decision</th>{{range .Windows}}<th class="n">{{.}}</th>{{end}}<th class="n">since start</th></tr>
{{range .Greylist}}<tr data-row="{{.Key}}"><th>{{.Name}}</th>{{range .Counts}}<td class="n">{{.}}</td>{{end}}</tr>
{{end}}<tr class="sum" data-row="{{.StoreErrors.Key}}"><th>{{.StoreErrors.Name}}</th>{{range .StoreErrors.Counts}}<td class="n">{{.}}</td>{{end}}</tr>
</table>
{{if .StoreSize}}<p id="store-size">Store: {{.StoreSize}}</p>{{end}}

<h2>List files</h2>
<p id="reload">Last reload: {{.Reload}}</p>

<h2>Last refusals</h2>
{{if .Recent}}<table id="refusals">
<tr><th>time (UTC)</th><th>client</th><th>HELO</th><th>outcome: by</th><th>reply</th><th>reason</th></tr>
{{range .Recent}}<tr><td>{{.At}}</td><td>{{.IP}}</td><td>{{.HELO}}</td><td>{{.By}}</td><td>{{.Code}}</td><td class="reason">{{.Reason}}</td></tr>
{{end}}</table>{{else}}<p>None since start.</p>{{end}}
</body>
</html>
{{define "zone"}}{{range $i, $_ := .Lookups}}<td class="n">{{index $.Lookups $i}}</td><td class="n">{{index $.Listed $i}}</td><td class="n">{{index $.Timeouts $i}}</td><td class="n">{{index $.Fails $i}}</td><td class="n">{{index $.Latency $i}}</td>{{end}}{{end}}
`
