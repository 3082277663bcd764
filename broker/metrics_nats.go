package broker

import (
	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
)

// metricsMaxStreams bounds the streams given series of their own (the
// stream label): dartup makes about twenty; users may make more.
const metricsMaxStreams = 256

// The embedded server's figures: this server's, as its monitoring
// endpoints (varz, jsz) would show them.
var (
	descConnections   = prometheus.NewDesc("dartup_nats_connections", "Client connections open on this server.", nil, nil)
	descSubscriptions = prometheus.NewDesc("dartup_nats_subscriptions", "Subscriptions on this server.", nil, nil)
	descSlow          = prometheus.NewDesc("dartup_nats_slow_consumers_total", "Clients this server found too slow to keep up with their messages.", nil, nil)
	descInMsgs        = prometheus.NewDesc("dartup_nats_in_msgs_total", "Messages this server received.", nil, nil)
	descOutMsgs       = prometheus.NewDesc("dartup_nats_out_msgs_total", "Messages this server sent.", nil, nil)
	descInBytes       = prometheus.NewDesc("dartup_nats_in_bytes_total", "Payload bytes this server received.", nil, nil)
	descOutBytes      = prometheus.NewDesc("dartup_nats_out_bytes_total", "Payload bytes this server sent.", nil, nil)
	descJSMemory      = prometheus.NewDesc("dartup_jetstream_memory_bytes", "Memory JetStream's memory-stored streams use on this server.", nil, nil)
	descJSStorage     = prometheus.NewDesc("dartup_jetstream_storage_bytes", "Disk JetStream's file-stored streams use on this server.", nil, nil)
	descJSStorageMax  = prometheus.NewDesc("dartup_jetstream_storage_max_bytes", "The most JetStream may store on this server's disk (--max-store).", nil, nil)
	descJSStreams     = prometheus.NewDesc("dartup_jetstream_streams", "Streams (KV buckets and object stores included) this server holds.", nil, nil)
	descStreamMsgs    = prometheus.NewDesc("dartup_jetstream_stream_messages", "Messages a stream holds on this server (a KV bucket is stream KV_NAME, an object store OBJ_NAME).", []string{"stream"}, nil)
	descStreamBytes   = prometheus.NewDesc("dartup_jetstream_stream_bytes", "Bytes a stream holds on this server.", []string{"stream"}, nil)
	descStreamCons    = prometheus.NewDesc("dartup_jetstream_stream_consumers", "Consumers of a stream.", []string{"stream"}, nil)
	natsCollectorDesc = []*prometheus.Desc{descConnections, descSubscriptions, descSlow, descInMsgs, descOutMsgs, descInBytes, descOutBytes,
		descJSMemory, descJSStorage, descJSStorageMax, descJSStreams, descStreamMsgs, descStreamBytes, descStreamCons}
)

// natsCollector reads the embedded server's figures at scrape time
// (Server.Varz and Server.Jsz: in-process calls, no requests).
type natsCollector struct{ b *Broker }

// Describe sends every NATS and JetStream metric's description.
func (c *natsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range natsCollectorDesc {
		ch <- d
	}
}

// Collect sends this server's NATS and JetStream figures.
func (c *natsCollector) Collect(ch chan<- prometheus.Metric) {
	ns := c.b.ns
	if ns == nil || !ns.Running() {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	if v, err := ns.Varz(nil); err == nil {
		gauge(descConnections, float64(v.Connections))
		gauge(descSubscriptions, float64(v.Subscriptions))
		counter(descSlow, float64(v.SlowConsumers))
		counter(descInMsgs, float64(v.InMsgs))
		counter(descOutMsgs, float64(v.OutMsgs))
		counter(descInBytes, float64(v.InBytes))
		counter(descOutBytes, float64(v.OutBytes))
	}
	jsz, err := ns.Jsz(&server.JSzOptions{Accounts: true, Streams: true})
	if err != nil || jsz.Disabled {
		return
	}
	gauge(descJSMemory, float64(jsz.Memory))
	gauge(descJSStorage, float64(jsz.Store))
	gauge(descJSStorageMax, float64(jsz.Config.MaxStore))
	gauge(descJSStreams, float64(jsz.Streams))
	for name, st := range streamTotals(jsz.AccountDetails, metricsMaxStreams) {
		gauge(descStreamMsgs, float64(st.Msgs), name)
		gauge(descStreamBytes, float64(st.Bytes), name)
		gauge(descStreamCons, float64(st.Consumers), name)
	}
}

// streamTotals sums the streams of every account by name (one series per
// name), keeping at most limit names.
func streamTotals(accounts []*server.AccountDetail, limit int) map[string]server.StreamState {
	out := map[string]server.StreamState{}
	for _, a := range accounts {
		for _, sd := range a.Streams {
			t, ok := out[sd.Name]
			if !ok && len(out) >= limit {
				continue
			}
			t.Msgs += sd.State.Msgs
			t.Bytes += sd.State.Bytes
			t.Consumers += sd.State.Consumers
			out[sd.Name] = t
		}
	}
	return out
}
