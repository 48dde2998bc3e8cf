{
  grafanaDashboards+:: {
    'petra-collector.json': (import 'petra-collector.libsonnet')($._config),
  },
}
