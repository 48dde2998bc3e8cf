// What a user of the mixin may change. Override it when importing:
//   (import 'mixin.libsonnet') + { _config+:: { selector: 'job="petra"' } }
{
  _config+:: {
    // Selects the collector's scrape targets: every replica and every shard.
    selector: 'job="petra-collector"',
    // The labels that tell one deployment of the collector from another.
    // Org alerts keep these (and org) and drop the rest, so the replicas of
    // a job (instance, pod) merge into one alert per org. Under the
    // Prometheus Operator, 'namespace, job' or 'cluster, namespace, job'.
    groupLabels: 'job',
    // Each alert's runbook is the heading of its name in this page.
    runbookUrlBase: 'https://github.com/petra-collector/petra-collector/blob/main/docs/operations.md#',
    // Your Grafana: each alert links the dashboard, for its org if it has one.
    grafanaUrl: 'https://grafana.example.com',
    dashboardUid: 'petra-collector',
    dashboardSlug: 'petra-security-usage',
  },
}
