// Package metrics is a process's own Prometheus registry (never the global
// one: two pipelines in one test binary must not share counters) and the
// small adapters that export counters mlink already keeps — atomics in
// each component's Stats — without copying them: every value is read at
// scrape time.
//
// Exporting a new counter is one registration:
//
//	reg.MustRegister(metrics.CounterFunc("mlink_bus_rejected_total", "Messages rejected at the bus.", func() float64 { return float64(n.Load()) }))
package metrics

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Prefix starts the name of every mlink metric.
const Prefix = "mlink_"

// Registry holds one process's metrics: mlink's and the Go runtime's and
// process's (go_*, process_*).
type Registry struct {
	reg *prometheus.Registry
}

// New makes a registry with the Go runtime and process collectors.
func New() *Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Registry{reg: reg}
}

// Register adds collectors; a metric whose name lacks the mlink_ prefix is
// refused, so the namespace stays one.
func (r *Registry) Register(cs ...prometheus.Collector) error {
	for _, c := range cs {
		descs := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(descs); close(descs) }()
		for d := range descs {
			// Desc has no name accessor; its String form quotes fqName first.
			if s := d.String(); !strings.Contains(s, `fqName: "`+Prefix) {
				for range descs {
				}
				return fmt.Errorf("metrics: %s lacks the %s prefix", s, Prefix)
			}
		}
		if err := r.reg.Register(c); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	return nil
}

// MustRegister is Register that panics: for registrations fixed in code.
func (r *Registry) MustRegister(cs ...prometheus.Collector) {
	if err := r.Register(cs...); err != nil {
		panic(err)
	}
}

// Unregister removes a collector (a family that a reload made obsolete).
func (r *Registry) Unregister(c prometheus.Collector) bool { return r.reg.Unregister(c) }

// Gatherer is what the handler serves (tests and benchmarks gather directly).
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

// Handler serves the registry in the Prometheus text (or protobuf) format.
// A collector failing does not hide the others.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// CounterFunc is a counter read from f at scrape time (f must not go down,
// except to zero when what it counts restarts).
func CounterFunc(name, help string, f func() float64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
}

// GaugeFunc is a gauge read from f at scrape time.
func GaugeFunc(name, help string, f func() float64) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
}

// Emit reports one sample of a family: its value and its label values, in
// the order of the family's label names.
type Emit func(value float64, labelValues ...string)

// Family is a labelled metric family whose samples are listed at scrape
// time by a function: for things that come and go (cameras added by a
// reload, connections), so no series is left behind or forgotten.
type Family struct {
	desc    *prometheus.Desc
	typ     prometheus.ValueType
	collect func(Emit)
}

// NewCounterFamily is a Family of counters.
func NewCounterFamily(name, help string, labels []string, collect func(Emit)) *Family {
	return &Family{desc: prometheus.NewDesc(name, help, labels, nil), typ: prometheus.CounterValue, collect: collect}
}

// NewGaugeFamily is a Family of gauges.
func NewGaugeFamily(name, help string, labels []string, collect func(Emit)) *Family {
	return &Family{desc: prometheus.NewDesc(name, help, labels, nil), typ: prometheus.GaugeValue, collect: collect}
}

// Describe implements prometheus.Collector.
func (f *Family) Describe(ch chan<- *prometheus.Desc) { ch <- f.desc }

// Collect implements prometheus.Collector.
func (f *Family) Collect(ch chan<- prometheus.Metric) {
	f.collect(func(v float64, lv ...string) {
		m, err := prometheus.NewConstMetric(f.desc, f.typ, v, lv...)
		if err != nil {
			m = prometheus.NewInvalidMetric(f.desc, err)
		}
		ch <- m
	})
}
