package controlapi

import (
	"github.com/prometheus/client_golang/prometheus"
)

// TrainingGauges are the gauges of /metrics that follow the run the
// controller trains: each is set from the metrics of the last committed
// step (Server.ObserveStep), as its metrics shard keeps them.
var TrainingGauges = []struct {
	// Name of the gauge, Metric the step metric it shows (docs/sepgrpo.md
	// lists them), Part the value of its "part" label ("" when it has
	// none); Phase says whether it carries the step's phase as a label.
	Name, Metric, Part string
	Phase              bool
	Help               string
}{
	{Name: "thinkgen_train_reward_mean", Metric: "reward/mean", Phase: true, Help: "Mean reward of the last committed step of each phase."},
	{Name: "thinkgen_train_kl", Metric: "loss/kl", Phase: true, Help: "KL to the reference policy (k3) of the last committed step of each phase."},
	{Name: "thinkgen_train_rollout_tokens_per_second", Metric: "rollout/tokens_per_s", Help: "Tokens sampled per second of generation in the last committed mllm-grpo step."},
	{Name: "thinkgen_train_rollout_images_per_second", Metric: "rollout/images_per_s", Help: "Images drawn per second of drawing in the last committed step that drew."},
	{Name: "thinkgen_train_step_time_seconds", Metric: "time/rollout_s", Part: "rollout", Phase: true, Help: "Where the last committed step of each phase spent its time, by part: rollout, reward, learn, storage (verification and commit), step (the whole step)."},
	{Name: "thinkgen_train_step_time_seconds", Metric: "time/reward_s", Part: "reward", Phase: true},
	{Name: "thinkgen_train_step_time_seconds", Metric: "time/learn_s", Part: "learn", Phase: true},
	{Name: "thinkgen_train_step_time_seconds", Metric: "time/storage_s", Part: "storage", Phase: true},
	{Name: "thinkgen_train_step_time_seconds", Metric: "time/step_s", Part: "step", Phase: true},
}

// Training holds the gauges of TrainingGauges and the step gauge in a
// Prometheus registry. A Server has one on its /metrics; a process
// without a controller API (an embedded train) serves one alone.
type Training struct {
	step   prometheus.Gauge
	gauges map[string]*prometheus.GaugeVec // by name
}

// NewTraining registers the training gauges in reg.
func NewTraining(reg *prometheus.Registry) *Training {
	tr := &Training{
		step: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "thinkgen_train_step",
			Help: "The run's last committed step (0: none yet).",
		}),
		gauges: map[string]*prometheus.GaugeVec{},
	}
	reg.MustRegister(tr.step)
	for _, g := range TrainingGauges {
		if _, ok := tr.gauges[g.Name]; ok {
			continue
		}
		var labels []string
		if g.Phase {
			labels = append(labels, "phase")
		}
		if g.Part != "" {
			labels = append(labels, "part")
		}
		tr.gauges[g.Name] = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: g.Name, Help: g.Help}, labels)
		reg.MustRegister(tr.gauges[g.Name])
	}
	return tr
}

// ObserveStep sets the training gauges from the metrics of committed step
// step of phase phase. A metric the step lacks (tokens/s of a dit-grpo
// step) leaves its gauge as it was.
func (s *Server) ObserveStep(step int, phase string, metrics map[string]float64) {
	s.train.Observe(step, phase, metrics)
}

// Observe sets the gauges from the metrics of committed step step of
// phase phase, as Server.ObserveStep does.
func (tr *Training) Observe(step int, phase string, metrics map[string]float64) {
	tr.step.Set(float64(step))
	for _, g := range TrainingGauges {
		v, ok := metrics[g.Metric]
		if !ok {
			continue
		}
		var labels []string
		if g.Phase {
			labels = append(labels, phase)
		}
		if g.Part != "" {
			labels = append(labels, g.Part)
		}
		tr.gauges[g.Name].WithLabelValues(labels...).Set(v)
	}
}
