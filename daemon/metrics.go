package daemon

import (
	"net/http"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/siglipd/siglipd/capture"
	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/daemon/framestore"
	"github.com/siglipd/siglipd/infer"
	"github.com/siglipd/siglipd/internal/kit"
	"github.com/siglipd/siglipd/publish"
)

// metrics are siglipd's Prometheus metrics, in a registry of their own.
// Histograms, the event counter and the probability gauge are updated by
// the pipeline; frame counts, camera and sink figures are read from the
// daemon at scrape time (statusCollector), so the stages need not know
// about Prometheus, and /metrics and /api/status cannot disagree.
//
// Frames are counted with the same six words everywhere (code, logs,
// /api/status, the live page, the docs; TestFrameWords checks): decoded from
// the stream; sampled at the camera's fps; and every sampled frame then
// exactly one of dropped (not looked at: replaced by a newer one before the
// batcher took it, its camera removed by a reload, or no time left at
// shutdown), skipped (not scored: it looked like the last scored frame),
// failed (the model could not score it) or scored by the model.
type metrics struct {
	reg          *prometheus.Registry
	batchSize    prometheus.Histogram
	inference    prometheus.Histogram
	frameWait    prometheus.Histogram
	frameToEvent prometheus.Histogram
	events       *prometheus.CounterVec
	probability  *prometheus.GaugeVec
	reloads      *prometheus.CounterVec
	clockJumps   prometheus.Counter
}

// statusSource is what metrics read at scrape time: the daemon.
type statusSource interface {
	Cameras() []capture.Status
	FramesDropped(camera string) uint64
	FramesScored(camera string) uint64
	FramesSkipped(camera string) uint64
	FramesFailed(camera string) uint64
	Sink() publish.Status
	Server() infer.ServerState
	StateFiles() []kit.StateFileStatus
}

// storeSource is a statusSource whose frame store, when it has one, is
// reported too.
type storeSource interface {
	FrameStore() (framestore.Stats, bool)
}

func newMetrics(src statusSource) *metrics {
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
		events:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "siglipd_events_total", Help: "Events published."}, []string{"camera", "label", "type"}),
		probability: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "siglipd_label_probability", Help: "Latest probability of each label."}, []string{"camera", "label"}),
		reloads:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "siglipd_config_reloads_total", Help: "Config reloads by result."}, []string{"result"}),
		clockJumps: prometheus.NewCounter(prometheus.CounterOpts{Name: "siglipd_clock_jumps_total",
			Help: "Jumps of the wall clock (steps of 100 ms or more against the monotonic clock); event times and the score history follow each."}),
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{Name: "siglipd_build_info", Help: "Always 1; the labels say which build runs.",
		ConstLabels: prometheus.Labels{"version": VersionString(), "goversion": runtime.Version()}})
	buildInfo.Set(1)
	m.reg.MustRegister(buildInfo, m.batchSize, m.inference, m.frameWait, m.frameToEvent, m.events, m.probability, m.reloads, m.clockJumps,
		&statusCollector{src: src}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

var (
	descFramesDecoded = prometheus.NewDesc("siglipd_frames_decoded_total", "Frames decoded from the camera.", []string{"camera"}, nil)
	descFramesSampled = prometheus.NewDesc("siglipd_frames_sampled_total", "Frames handed on at the camera's fps.", []string{"camera"}, nil)
	descFramesDropped = prometheus.NewDesc("siglipd_frames_dropped_total", "Sampled frames not looked at: replaced by a newer one before the batcher took them (or left at shutdown).", []string{"camera"}, nil)
	descFramesScored  = prometheus.NewDesc("siglipd_frames_scored_total", "Sampled frames scored by the model.", []string{"camera"}, nil)
	descFramesSkipped = prometheus.NewDesc("siglipd_frames_skipped_total", "Sampled frames not scored because they looked like the last scored one (skip_unchanged).", []string{"camera"}, nil)
	descFramesFailed  = prometheus.NewDesc("siglipd_frames_failed_total", "Sampled frames the model could not score (their batch failed: the inference server down, mostly); the next frames are scored as usual.", []string{"camera"}, nil)
	descReconnects    = prometheus.NewDesc("siglipd_camera_reconnects_total", "Reconnection attempts.", []string{"camera"}, nil)
	descStalls        = prometheus.NewDesc("siglipd_camera_stalls_total", "Times the stall watchdog fired.", []string{"camera"}, nil)
	descCameraUp      = prometheus.NewDesc("siglipd_camera_connected", "1 when frames are arriving.", []string{"camera"}, nil)
	descLastFrame     = prometheus.NewDesc("siglipd_camera_last_frame_timestamp_seconds", "When the last frame was read.", []string{"camera"}, nil)
	descAbandoned     = prometheus.NewDesc("siglipd_camera_abandoned_readers", "Readers stuck in OpenCV and left behind.", []string{"camera"}, nil)
	descKeyframeRate  = prometheus.NewDesc("siglipd_camera_keyframe_rate", "Key frames per second the camera sends, measured from the stream (0 until measured); decoding key frames only, the most it can sample.", []string{"camera"}, nil)
	descSinkConnected = prometheus.NewDesc("siglipd_sink_connected", "1 when the sink can deliver (MQTT connected).", nil, nil)
	descOutbox        = prometheus.NewDesc("siglipd_outbox_depth", "Events waiting for the broker.", nil, nil)
	descEventsDropped = prometheus.NewDesc("siglipd_events_dropped_total", "Events not delivered: the oldest when the MQTT outbox was full, or a line stdout could not take.", nil, nil)
	descPublished     = prometheus.NewDesc("siglipd_messages_published_total", "Messages acknowledged by the broker (or written to stdout).", nil, nil)
	descConnFailures  = prometheus.NewDesc("siglipd_broker_connect_failures_total", "Failed connection attempts to the broker.", nil, nil)
	descServerUp      = prometheus.NewDesc("siglipd_inference_server_up", "1 when the inference server answers (always 1 for the local backend).", []string{"backend"}, nil)
	descServerFails   = prometheus.NewDesc("siglipd_inference_server_failures_total", "Failed calls to the remote backend's inference server.", []string{"backend"}, nil)
	descStoreFrames   = prometheus.NewDesc("siglipd_store_frames", "Frames kept in the frame store (state_dir/frames) for search.", nil, nil)
	descStoreBytes    = prometheus.NewDesc("siglipd_store_bytes", "Bytes of the frame store's segments (at most store.max_size and 2 %).", nil, nil)
	descStoreStored   = prometheus.NewDesc("siglipd_store_frames_stored_total", "Frames written to the frame store.", nil, nil)
	descStoreDropped  = prometheus.NewDesc("siglipd_store_frames_dropped_total", "Frames not kept because the store's writer was behind (its queue was full).", nil, nil)
	descStoreFailed   = prometheus.NewDesc("siglipd_store_frames_failed_total", "Frames whose write to the frame store failed (a full or read-only disk).", nil, nil)
	descStateWrites   = prometheus.NewDesc("siglipd_state_write_failures_total", "Writes of a state folder file that failed (a full or read-only disk): events kept in memory only, journal and history saves, marks and thresholds refused.", []string{"file"}, nil)
)

// statusCollector turns camera, hand-off and sink status into metrics.
type statusCollector struct{ src statusSource }

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFramesDecoded, descFramesSampled, descFramesDropped, descFramesScored, descFramesSkipped, descFramesFailed, descReconnects, descStalls,
		descCameraUp, descLastFrame, descAbandoned, descKeyframeRate, descSinkConnected, descOutbox, descEventsDropped, descPublished, descConnFailures,
		descServerUp, descServerFails, descStateWrites, descStoreFrames, descStoreBytes, descStoreStored, descStoreDropped, descStoreFailed} {
		ch <- d
	}
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.src.Cameras() {
		cam := st.Name
		ch <- prometheus.MustNewConstMetric(descFramesDecoded, prometheus.CounterValue, float64(st.FramesDecoded), cam)
		ch <- prometheus.MustNewConstMetric(descFramesSampled, prometheus.CounterValue, float64(st.FramesSampled), cam)
		ch <- prometheus.MustNewConstMetric(descFramesDropped, prometheus.CounterValue, float64(c.src.FramesDropped(cam)), cam)
		ch <- prometheus.MustNewConstMetric(descFramesScored, prometheus.CounterValue, float64(c.src.FramesScored(cam)), cam)
		ch <- prometheus.MustNewConstMetric(descFramesSkipped, prometheus.CounterValue, float64(c.src.FramesSkipped(cam)), cam)
		ch <- prometheus.MustNewConstMetric(descFramesFailed, prometheus.CounterValue, float64(c.src.FramesFailed(cam)), cam)
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
		ch <- prometheus.MustNewConstMetric(descKeyframeRate, prometheus.GaugeValue, st.KeyframeRate, cam)
	}
	s := c.src.Sink()
	connected := 0.0
	if s.Connected {
		connected = 1
	}
	ch <- prometheus.MustNewConstMetric(descSinkConnected, prometheus.GaugeValue, connected)
	ch <- prometheus.MustNewConstMetric(descOutbox, prometheus.GaugeValue, float64(s.OutboxDepth))
	ch <- prometheus.MustNewConstMetric(descEventsDropped, prometheus.CounterValue, float64(s.EventsDropped))
	ch <- prometheus.MustNewConstMetric(descPublished, prometheus.CounterValue, float64(s.Published))
	ch <- prometheus.MustNewConstMetric(descConnFailures, prometheus.CounterValue, float64(s.ConnectFailures))
	srv := c.src.Server()
	up := 0.0
	if srv.Up {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descServerUp, prometheus.GaugeValue, up, srv.Backend)
	ch <- prometheus.MustNewConstMetric(descServerFails, prometheus.CounterValue, float64(srv.Failures), srv.Backend)
	for _, f := range c.src.StateFiles() {
		ch <- prometheus.MustNewConstMetric(descStateWrites, prometheus.CounterValue, float64(f.WriteFailures), f.Name)
	}
	if s, ok := c.src.(storeSource); ok {
		if st, on := s.FrameStore(); on {
			ch <- prometheus.MustNewConstMetric(descStoreFrames, prometheus.GaugeValue, float64(st.Frames))
			ch <- prometheus.MustNewConstMetric(descStoreBytes, prometheus.GaugeValue, float64(st.Bytes))
			ch <- prometheus.MustNewConstMetric(descStoreStored, prometheus.CounterValue, float64(st.Stored))
			ch <- prometheus.MustNewConstMetric(descStoreDropped, prometheus.CounterValue, float64(st.Dropped))
			ch <- prometheus.MustNewConstMetric(descStoreFailed, prometheus.CounterValue, float64(st.Failed))
		}
	}
}

// handler serves the registry (/metrics).
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// forget drops the per-label series of cameras and labels that are gone
// after a reload, so a dashboard does not show their last probability
// forever.
func (m *metrics) forget(old, cfg *configs.Config) {
	kept := map[[2]string]bool{}
	for _, c := range cfg.Cameras {
		for _, l := range c.Labels {
			kept[[2]string{c.Name, l.Name}] = true
		}
	}
	for _, c := range old.Cameras {
		for _, l := range c.Labels {
			if !kept[[2]string{c.Name, l.Name}] {
				m.probability.DeleteLabelValues(c.Name, l.Name)
			}
		}
	}
}
