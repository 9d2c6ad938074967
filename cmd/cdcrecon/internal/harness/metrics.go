package harness

import (
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics are scraped samples by series ("name{labels}").
type Metrics map[string]float64

// Scrape reads a Prometheus endpoint; nil when it does not answer.
func Scrape(url string) Metrics {
	resp, err := http.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	return ParseMetrics(resp.Body)
}

// ParseMetrics reads Prometheus' text exposition format with its own
// parser: one sample per series, a histogram's and a summary's as their
// _bucket, _sum and _count (and quantile) series. Nil when the text does
// not parse.
func ParseMetrics(r io.Reader) Metrics {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil
	}
	m := Metrics{}
	for name, f := range families {
		for _, s := range f.GetMetric() {
			labels := s.GetLabel()
			series := func(suffix string, extra ...*dto.LabelPair) string {
				return name + suffix + labelText(append(slices.Clone(labels), extra...))
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				m[series("")] = s.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				m[series("")] = s.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				h := s.GetHistogram()
				for _, b := range h.GetBucket() {
					m[series("_bucket", label("le", b.GetUpperBound()))] = float64(b.GetCumulativeCount())
				}
				m[series("_bucket", label("le", math.Inf(1)))] = float64(h.GetSampleCount())
				m[series("_sum")], m[series("_count")] = h.GetSampleSum(), float64(h.GetSampleCount())
			case dto.MetricType_SUMMARY:
				sm := s.GetSummary()
				for _, q := range sm.GetQuantile() {
					m[series("", label("quantile", q.GetQuantile()))] = q.GetValue()
				}
				m[series("_sum")], m[series("_count")] = sm.GetSampleSum(), float64(sm.GetSampleCount())
			default:
				m[series("")] = s.GetUntyped().GetValue()
			}
		}
	}
	return m
}

// label is a label whose value is a number, as the exposition writes it.
func label(name string, v float64) *dto.LabelPair {
	text := strconv.FormatFloat(v, 'g', -1, 64)
	if math.IsInf(v, 1) {
		text = "+Inf"
	}
	return &dto.LabelPair{Name: &name, Value: &text}
}

// labelText writes labels as a series name's {a="x",b="y"}, nothing when
// there are none.
func labelText(labels []*dto.LabelPair) string {
	if len(labels) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range labels {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l.GetName())
		b.WriteByte('=')
		b.WriteString(strconv.Quote(l.GetValue()))
	}
	b.WriteByte('}')
	return b.String()
}

func MetricName(series string) string {
	if i := strings.IndexByte(series, '{'); i >= 0 {
		return series[:i]
	}
	return series
}

// Sum adds up a metric over its labels.
func (m Metrics) Sum(name string) float64 {
	var s float64
	for k, v := range m {
		if MetricName(k) == name {
			s += v
		}
	}
	return s
}

// Series counts a metric's labelled series.
func (m Metrics) Series(name string) int {
	n := 0
	for k := range m {
		if MetricName(k) == name && k != name {
			n++
		}
	}
	return n
}

// ByTable sums a metric per table label.
func (m Metrics) ByTable(name string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if MetricName(k) != name {
			continue
		}
		if i := strings.Index(k, `table="`); i >= 0 {
			t := k[i+7:]
			out[t[:strings.IndexByte(t, '"')]] += v
		}
	}
	return out
}
