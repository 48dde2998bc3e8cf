// Recording rules: each per-org gauge merged across the replicas of a job,
// as the alerts and the dashboard merge it (aggregate.libsonnet), for your
// own queries and alerts: `org:petra_up:max`, `org:petra_auth_failure:min`...
// A gauge no collector exports (billing while it is off) records nothing.
local aggregate = import 'aggregate.libsonnet';

{
  local by = $._config.groupLabels + ', org',

  prometheusRules+:: {
    groups+: [
      {
        name: 'petra-collector.rules',
        rules: [
          {
            record: 'org:%s:%s' % [metric, aggregate.perOrg[metric]],
            expr: aggregate.org(metric, by),
          }
          for metric in std.objectFields(aggregate.perOrg)
        ] + [
          // What Petra bills each org this month (docs/reconciling-an-invoice.md): each
          // tenant's projected units once (the max of the replicas), summed per org.
          {
            record: 'org:petra_tenant_projected_billable_units:sum',
            expr: 'sum by (%(by)s) (max by (%(by)s, tenant_id) (petra_tenant_projected_billable_units))' % { by: by },
          },
        ],
      },
    ],
  },
}
