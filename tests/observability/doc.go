// Package observability tests the operators' view of Dialstream: the Grafana
// dashboards (deploy/grafana) and the Prometheus alert rules
// (deploy/prometheus) against the metrics the services really expose.
//
//   - static_test.go checks the files offline: dashboards well formed and
//     wired to the provisioned data source, every alert documented and
//     unit-tested, `promtool check rules` and `promtool test rules` passing.
//   - prometheus_test.go runs `dialstream dev` (embedded broker, a real
//     livekit-server, the phone simulator, the three services) under a small
//     load with a real Prometheus scraping it, and evaluates every dashboard
//     query and every rule through Prometheus' HTTP API: each must be valid
//     and return at least one series.
//
// Both need Debian's prometheus package (scripts/install-prometheus.sh) and
// the second livekit-server (scripts/install-livekit.sh); without them the
// tests skip, except under CI=true, where they fail.
package observability
