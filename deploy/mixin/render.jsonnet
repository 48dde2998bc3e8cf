// What deploy/ ships, from the mixin with its default _config; render.py
// writes each part to its file.
local mixin = import 'mixin.libsonnet';
local groups = mixin.prometheusRules.groups + mixin.prometheusAlerts.groups;

{
  rules: { groups: groups },
  prometheusRule: {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: 'petra-collector',
      labels: {
        'app.kubernetes.io/name': 'petra-collector',
        'app.kubernetes.io/component': 'exporter',
      },
    },
    spec: { groups: groups },
  },
  dashboard: mixin.grafanaDashboards['petra-collector.json'],
}
