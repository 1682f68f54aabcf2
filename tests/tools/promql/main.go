// promql-check: Prometheus' own parsers over the chart's monitoring files, for the
// packaging tests. Each argument is a file: a rule file (a PrometheusRule's spec,
// `groups: [...]`, as YAML) or a Grafana dashboard (JSON, every panel target's `expr`).
// Every rule goes through the rule-file parser (which parses its PromQL), every
// dashboard query through the PromQL parser. Prints one JSON object: the alerts, the
// number of queries, and every metric name they select. Exits 1 naming the first
// file and rule or query that does not parse.
package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// The parser Prometheus uses by default.
var promql = parser.NewParser(parser.Options{})

type report struct {
	Alerts  []string `json:"alerts"`
	Records []string `json:"records"`
	Queries int      `json:"queries"`
	Metrics []string `json:"metrics"`
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "promql-check: "+format+"\n", args...)
	os.Exit(1)
}

// The metric names an expression selects.
func metrics(expr string, into map[string]bool) error {
	e, err := promql.ParseExpr(expr)
	if err != nil {
		return err
	}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			if vs.Name != "" {
				into[vs.Name] = true
			}
			for _, m := range vs.LabelMatchers {
				if m.Name == "__name__" {
					into[m.Value] = true
				}
			}
		}
		return nil
	})
	return nil
}

// Every "expr" string in a dashboard's panels (and nested rows).
func exprs(v any, out *[]string) {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if s, ok := x.(string); ok && k == "expr" {
				*out = append(*out, s)
			} else {
				exprs(x, out)
			}
		}
	case []any:
		for _, x := range t {
			exprs(x, out)
		}
	}
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: promql-check FILE...")
	}
	names := map[string]bool{}
	var r report
	for _, path := range os.Args[1:] {
		content, err := os.ReadFile(path)
		if err != nil {
			fail("%v", err)
		}
		if strings.HasSuffix(path, ".json") {
			var dash any
			if err := json.Unmarshal(content, &dash); err != nil {
				fail("%s is not JSON: %v", path, err)
			}
			var qs []string
			exprs(dash, &qs)
			for _, q := range qs {
				if err := metrics(q, names); err != nil {
					fail("%s: query %q: %v", path, q, err)
				}
			}
			r.Queries += len(qs)
			continue
		}
		groups, errs := rulefmt.Parse(content, false, model.UTF8Validation, promql, slog.New(slog.DiscardHandler))
		if len(errs) > 0 {
			fail("%s: %v", path, errs[0])
		}
		for _, g := range groups.Groups {
			for _, rule := range g.Rules {
				if rule.Alert != "" {
					r.Alerts = append(r.Alerts, rule.Alert)
				}
				if rule.Record != "" {
					r.Records = append(r.Records, rule.Record)
				}
				if err := metrics(rule.Expr, names); err != nil {
					fail("%s: rule %s%s: %v", path, rule.Alert, rule.Record, err)
				}
			}
		}
	}
	for n := range names {
		r.Metrics = append(r.Metrics, n)
	}
	sort.Strings(r.Metrics)
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
}
