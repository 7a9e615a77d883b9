package phonesim

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	dials *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		dials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dialstream_phonesim_dials_total",
			Help: "CreateSIPParticipant requests received, by the script the dialed number selected.",
		}, []string{"script"}),
	}
	if err := reg.Register(m.dials); err != nil {
		return nil, err
	}
	for _, s := range Scripts {
		m.dials.WithLabelValues(string(s))
	}
	return m, nil
}
