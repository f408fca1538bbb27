package daemon

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/siglipd/siglipd/capture"
)

// metrics are siglipd's Prometheus metrics, in a registry of their own.
// Histograms and counters are updated by the pipeline; camera and sink
// figures are read from their Status at scrape time (statusCollector), so
// the stages need not know about Prometheus.
type metrics struct {
	reg          *prometheus.Registry
	batchSize    prometheus.Histogram
	inference    prometheus.Histogram
	frameWait    prometheus.Histogram
	frameToEvent prometheus.Histogram
	inferred     *prometheus.CounterVec
	events       *prometheus.CounterVec
	probability  *prometheus.GaugeVec
	reloads      *prometheus.CounterVec
}

func newMetrics(d *daemon) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "siglipd_batch_size", Help: "Frames scored per vision-tower run.",
			Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64},
		}),
		inference: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "siglipd_inference_seconds", Help: "Time of one batch: preprocessing and the vision tower.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		frameWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "siglipd_frame_wait_seconds", Help: "Age of a frame when its batch starts: time in the hand-off and batcher.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		frameToEvent: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "siglipd_frame_to_event_seconds", Help: "From capture of the frame that caused an event to the event being queued for publishing.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}),
		inferred:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "siglipd_frames_scored_total", Help: "Frames scored by the model."}, []string{"camera"}),
		events:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "siglipd_events_total", Help: "Events published."}, []string{"camera", "label", "type"}),
		probability: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "siglipd_label_probability", Help: "Latest probability of each label."}, []string{"camera", "label"}),
		reloads:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "siglipd_config_reloads_total", Help: "Config reloads by result."}, []string{"result"}),
	}
	m.reg.MustRegister(m.batchSize, m.inference, m.frameWait, m.frameToEvent, m.inferred, m.events, m.probability, m.reloads,
		&statusCollector{d: d}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

var (
	descFramesDecoded = prometheus.NewDesc("siglipd_frames_decoded_total", "Frames decoded from the camera.", []string{"camera"}, nil)
	descFramesIn      = prometheus.NewDesc("siglipd_frames_sampled_total", "Frames handed on at the camera's fps.", []string{"camera"}, nil)
	descFramesDropped = prometheus.NewDesc("siglipd_frames_dropped_total", "Sampled frames replaced by a newer one before inference took them.", []string{"camera"}, nil)
	descReconnects    = prometheus.NewDesc("siglipd_camera_reconnects_total", "Reconnection attempts.", []string{"camera"}, nil)
	descStalls        = prometheus.NewDesc("siglipd_camera_stalls_total", "Times the stall watchdog fired.", []string{"camera"}, nil)
	descCameraUp      = prometheus.NewDesc("siglipd_camera_connected", "1 when frames are arriving.", []string{"camera"}, nil)
	descLastFrame     = prometheus.NewDesc("siglipd_camera_last_frame_timestamp_seconds", "When the last frame was read.", []string{"camera"}, nil)
	descAbandoned     = prometheus.NewDesc("siglipd_camera_abandoned_readers", "Readers stuck in OpenCV and left behind.", []string{"camera"}, nil)
	descBroker        = prometheus.NewDesc("siglipd_sink_connected", "1 when the sink can deliver (MQTT connected).", nil, nil)
	descOutbox        = prometheus.NewDesc("siglipd_outbox_depth", "Events waiting for the broker.", nil, nil)
	descOutboxDropped = prometheus.NewDesc("siglipd_outbox_dropped_total", "Events dropped because the outbox was full.", nil, nil)
	descPublished     = prometheus.NewDesc("siglipd_messages_published_total", "Messages acknowledged by the broker (or written to stdout).", nil, nil)
	descConnFailures  = prometheus.NewDesc("siglipd_broker_connect_failures_total", "Failed connection attempts to the broker.", nil, nil)
)

// statusCollector turns camera, hand-off and sink status into metrics.
type statusCollector struct{ d *daemon }

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFramesDecoded, descFramesIn, descFramesDropped, descReconnects, descStalls,
		descCameraUp, descLastFrame, descAbandoned, descBroker, descOutbox, descOutboxDropped, descPublished, descConnFailures} {
		ch <- d
	}
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.d.cameraStatuses() {
		cam := st.Name
		ch <- prometheus.MustNewConstMetric(descFramesDecoded, prometheus.CounterValue, float64(st.FramesRead), cam)
		ch <- prometheus.MustNewConstMetric(descFramesIn, prometheus.CounterValue, float64(st.FramesOut), cam)
		ch <- prometheus.MustNewConstMetric(descFramesDropped, prometheus.CounterValue, float64(c.d.latest.Drops(cam)), cam)
		ch <- prometheus.MustNewConstMetric(descReconnects, prometheus.CounterValue, float64(st.Reconnects), cam)
		ch <- prometheus.MustNewConstMetric(descStalls, prometheus.CounterValue, float64(st.Stalls), cam)
		up := 0.0
		if st.State == capture.StateConnected {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descCameraUp, prometheus.GaugeValue, up, cam)
		if !st.LastFrame.IsZero() {
			ch <- prometheus.MustNewConstMetric(descLastFrame, prometheus.GaugeValue, float64(st.LastFrame.UnixNano())/1e9, cam)
		}
		ch <- prometheus.MustNewConstMetric(descAbandoned, prometheus.GaugeValue, float64(st.AbandonedReaders), cam)
	}
	s := c.d.sink.Status()
	connected := 0.0
	if s.Connected {
		connected = 1
	}
	ch <- prometheus.MustNewConstMetric(descBroker, prometheus.GaugeValue, connected)
	ch <- prometheus.MustNewConstMetric(descOutbox, prometheus.GaugeValue, float64(s.OutboxDepth))
	ch <- prometheus.MustNewConstMetric(descOutboxDropped, prometheus.CounterValue, float64(s.Dropped))
	ch <- prometheus.MustNewConstMetric(descPublished, prometheus.CounterValue, float64(s.Published))
	ch <- prometheus.MustNewConstMetric(descConnFailures, prometheus.CounterValue, float64(s.ConnectFailures))
}

// cameraStatuses is every running camera's status, in config order.
func (d *daemon) cameraStatuses() []capture.Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]capture.Status, 0, len(d.cfg.Cameras))
	for _, c := range d.cfg.Cameras {
		if run, ok := d.cameras[c.Name]; ok {
			out = append(out, run.source.Status())
		}
	}
	return out
}
