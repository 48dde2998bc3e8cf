// petra-collector's monitoring mixin: prometheusAlerts, prometheusRules and
// grafanaDashboards, read from _config (config.libsonnet). README.md says how
// to import it and how the shipped files are rendered from it.
(import 'config.libsonnet')
+ (import 'alerts.libsonnet')
+ (import 'rules.libsonnet')
+ (import 'dashboards/dashboards.libsonnet')
