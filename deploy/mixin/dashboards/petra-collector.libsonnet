// The Grafana dashboard (uid petra-collector). Its per-org gauges merge the
// replicas of a job as the alerts do (aggregate.libsonnet); the per-tenant
// gauges take the max of the replicas, and counters are summed as rates.
local aggregate = import '../aggregate.libsonnet';

function(config)
  // `min by (org) (petra_auth_failure{org=~"$org"})` and the like, by metric name.
  local org = {
    [metric]: aggregate.org(metric, 'org', 'org=~"$org"')
    for metric in std.objectFields(aggregate.perOrg)
  };
  {
    __inputs: [],
    __requires: [
      {
        type: 'grafana',
        id: 'grafana',
        name: 'Grafana',
        version: '10.0.0',
      },
      {
        type: 'datasource',
        id: 'prometheus',
        name: 'Prometheus',
        version: '1.0.0',
      },
    ],
    uid: 'petra-collector',
    title: 'Petra Security usage',
    description: 'Tenants, licensed and billable users per org and tenant, API key health, incidents per tenant, projected billable units and polling of petra-collector.',
    tags: [
      'petra',
      'petra-collector',
    ],
    editable: true,
    graphTooltip: 1,
    schemaVersion: 39,
    version: 1,
    refresh: '1m',
    time: {
      from: 'now-7d',
      to: 'now',
    },
    timepicker: {},
    timezone: '',
    fiscalYearStartMonth: 0,
    liveNow: false,
    weekStart: '',
    links: [
      {
        title: 'Runbook',
        type: 'link',
        icon: 'doc',
        targetBlank: true,
        url: 'https://github.com/petra-collector/petra-collector/blob/main/docs/operations.md',
        tags: [],
        asDropdown: false,
        includeVars: false,
        keepTime: false,
        tooltip: 'Alerts and what to do about them',
      },
    ],
    annotations: {
      list: [
        {
          builtIn: 1,
          datasource: {
            type: 'grafana',
            uid: '-- Grafana --',
          },
          enable: true,
          hide: true,
          iconColor: 'rgba(0, 211, 255, 1)',
          name: 'Annotations & Alerts',
          type: 'dashboard',
        },
      ],
    },
    templating: {
      list: [
        {
          name: 'datasource',
          label: 'Data source',
          type: 'datasource',
          query: 'prometheus',
          current: {},
          hide: 0,
          refresh: 1,
          regex: '',
          options: [],
          includeAll: false,
          multi: false,
        },
        {
          name: 'org',
          label: 'Organization',
          type: 'query',
          datasource: {
            type: 'prometheus',
            uid: '${datasource}',
          },
          definition: 'label_values(petra_api_requests_total, org)',
          query: {
            query: 'label_values(petra_api_requests_total, org)',
            refId: 'PrometheusVariableQueryEditor-VariableQuery',
          },
          refresh: 2,
          sort: 1,
          multi: true,
          includeAll: true,
          allValue: '.+',
          current: {
            selected: true,
            text: [
              'All',
            ],
            value: [
              '$__all',
            ],
          },
          hide: 0,
          regex: '',
          options: [],
        },
        {
          name: 'tenant',
          label: 'Tenant',
          type: 'query',
          datasource: {
            type: 'prometheus',
            uid: '${datasource}',
          },
          definition: 'query_result(max by (org, tenant_id, display_name) (petra_tenant_info{org=~"$org"}))',
          query: {
            query: 'query_result(max by (org, tenant_id, display_name) (petra_tenant_info{org=~"$org"}))',
            refId: 'PrometheusVariableQueryEditor-VariableQuery',
          },
          regex: '/(?:display_name="(?<text>[^"]+)".*)?tenant_id="(?<value>[^"]+)"/',
          refresh: 2,
          sort: 1,
          multi: true,
          includeAll: true,
          allValue: '.+',
          current: {
            selected: true,
            text: [
              'All',
            ],
            value: [
              '$__all',
            ],
          },
          hide: 0,
          options: [],
        },
      ],
    },
    panels: [
      {
        type: 'stat',
        id: 1,
        title: 'Orgs polled OK',
        description: 'Orgs whose last poll succeeded (petra_up == 1). Orgs not yet polled since a start (pending) are in neither this count nor a failure: they have no petra_up sample.',
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 4,
          w: 4,
          x: 0,
          y: 0,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'sum(%(petra_up)s)' % org,
            range: false,
            instant: true,
            editorMode: 'code',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'text',
                  value: null,
                },
              ],
            },
            mappings: [],
            color: {
              mode: 'thresholds',
            },
          },
          overrides: [],
        },
        options: {
          reduceOptions: {
            calcs: [
              'lastNotNull',
            ],
            fields: '',
            values: false,
          },
          colorMode: 'value',
          graphMode: 'none',
          textMode: 'auto',
          justifyMode: 'auto',
          orientation: 'auto',
        },
      },
      {
        type: 'stat',
        id: 2,
        title: 'API keys rejected',
        description: 'Orgs whose key the Petra API answers with 401 (invalid, missing or deleted). Alert: PetraApiKeyInvalid.',
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 4,
          w: 4,
          x: 4,
          y: 0,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'count((%(petra_auth_failure)s == 1)) or vector(0)' % org,
            range: false,
            instant: true,
            editorMode: 'code',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'green',
                  value: null,
                },
                {
                  color: 'red',
                  value: 1,
                },
              ],
            },
            mappings: [],
            color: {
              mode: 'thresholds',
            },
          },
          overrides: [],
        },
        options: {
          reduceOptions: {
            calcs: [
              'lastNotNull',
            ],
            fields: '',
            values: false,
          },
          colorMode: 'value',
          graphMode: 'none',
          textMode: 'auto',
          justifyMode: 'auto',
          orientation: 'auto',
        },
      },
      {
        type: 'stat',
        id: 3,
        title: 'Tenants',
        description: 'Tenants reported by the Petra API (totalTenants), summed over orgs.',
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 4,
          w: 4,
          x: 8,
          y: 0,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'sum(max by (org) (petra_org_tenants{org=~"$org"}))',
            range: false,
            instant: true,
            editorMode: 'code',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'text',
                  value: null,
                },
              ],
            },
            mappings: [],
            color: {
              mode: 'thresholds',
            },
          },
          overrides: [],
        },
        options: {
          reduceOptions: {
            calcs: [
              'lastNotNull',
            ],
            fields: '',
            values: false,
          },
          colorMode: 'value',
          graphMode: 'none',
          textMode: 'auto',
          justifyMode: 'auto',
          orientation: 'auto',
        },
      },
      {
        type: 'stat',
        id: 4,
        title: 'Licensed users',
        description: 'totalLicensedUsers, summed over the selected tenants.',
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 4,
          w: 4,
          x: 12,
          y: 0,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'sum(max by (org, tenant_id) (petra_tenant_licensed_users{org=~"$org", tenant_id=~"$tenant"}))',
            range: false,
            instant: true,
            editorMode: 'code',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'text',
                  value: null,
                },
              ],
            },
            mappings: [],
            color: {
              mode: 'thresholds',
            },
          },
          overrides: [],
        },
        options: {
          reduceOptions: {
            calcs: [
              'lastNotNull',
            ],
            fields: '',
            values: false,
          },
          colorMode: 'value',
          graphMode: 'none',
          textMode: 'auto',
          justifyMode: 'auto',
          orientation: 'auto',
        },
      },
      {
        type: 'stat',
        id: 5,
        title: 'Billable users this month',
        description: 'billableUsersThisMonth, summed over the selected tenants.',
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 4,
          w: 4,
          x: 16,
          y: 0,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'sum(max by (org, tenant_id) (petra_tenant_billable_users{org=~"$org", tenant_id=~"$tenant"}))',
            range: false,
            instant: true,
            editorMode: 'code',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'text',
                  value: null,
                },
              ],
            },
            mappings: [],
            color: {
              mode: 'thresholds',
            },
          },
          overrides: [],
        },
        options: {
          reduceOptions: {
            calcs: [
              'lastNotNull',
            ],
            fields: '',
            values: false,
          },
          colorMode: 'value',
          graphMode: 'none',
          textMode: 'auto',
          justifyMode: 'auto',
          orientation: 'auto',
        },
      },
      {
        type: 'stat',
        id: 6,
        title: 'Oldest data',
        description: 'Time since the last successful poll of the org that has waited longest. Alert PetraUsageStale fires above 30 minutes.',
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 4,
          w: 4,
          x: 20,
          y: 0,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'max(time() - max by (org) (petra_last_success_timestamp_seconds{org=~"$org"} > 0))',
            range: false,
            instant: true,
            editorMode: 'code',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 's',
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'green',
                  value: null,
                },
                {
                  color: 'yellow',
                  value: 900,
                },
                {
                  color: 'red',
                  value: 1800,
                },
              ],
            },
            mappings: [],
            color: {
              mode: 'thresholds',
            },
          },
          overrides: [],
        },
        options: {
          reduceOptions: {
            calcs: [
              'lastNotNull',
            ],
            fields: '',
            values: false,
          },
          colorMode: 'value',
          graphMode: 'none',
          textMode: 'auto',
          justifyMode: 'auto',
          orientation: 'auto',
        },
      },
      {
        type: 'row',
        id: 7,
        title: 'API key health',
        collapsed: false,
        gridPos: {
          h: 1,
          w: 24,
          x: 0,
          y: 4,
        },
        panels: [],
      },
      {
        type: 'table',
        id: 8,
        title: 'Rejected API keys',
        description: 'Orgs whose key is answered with 401 right now, when they last polled successfully (the key failed at some point after that) and how many 401s they got in 24 hours. Runbook: docs/operations.md#petraapikeyinvalid.',
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 8,
          w: 12,
          x: 0,
          y: 5,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: '(%(petra_auth_failure)s == 1)' % org,
            range: false,
            instant: true,
            editorMode: 'code',
            format: 'table',
          },
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'B',
            expr: '1000 * max by (org) (petra_last_success_timestamp_seconds{org=~"$org"} > 0) and on (org) (%(petra_auth_failure)s == 1)' % org,
            range: false,
            instant: true,
            editorMode: 'code',
            format: 'table',
          },
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'C',
            expr: 'time() - max by (org) (petra_last_success_timestamp_seconds{org=~"$org"} > 0) and on (org) (%(petra_auth_failure)s == 1)' % org,
            range: false,
            instant: true,
            editorMode: 'code',
            format: 'table',
          },
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'D',
            expr: 'sum by (org) (increase(petra_auth_failures_total{org=~"$org"}[24h])) and on (org) (%(petra_auth_failure)s == 1)' % org,
            range: false,
            instant: true,
            editorMode: 'code',
            format: 'table',
          },
        ],
        transformations: [
          {
            id: 'merge',
            options: {},
          },
          {
            id: 'organize',
            options: {
              excludeByName: {
                Time: true,
                'Value #A': true,
              },
              renameByName: {
                org: 'Org',
                'Value #B': 'Last successful poll',
                'Value #C': 'Failing for at most',
                'Value #D': '401 answers (24 h)',
              },
              indexByName: {},
            },
          },
        ],
        fieldConfig: {
          defaults: {
            custom: {
              align: 'auto',
              cellOptions: {
                type: 'auto',
              },
            },
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'text',
                  value: null,
                },
              ],
            },
          },
          overrides: [
            {
              matcher: {
                id: 'byName',
                options: 'Last successful poll',
              },
              properties: [
                {
                  id: 'unit',
                  value: 'dateTimeAsIso',
                },
              ],
            },
            {
              matcher: {
                id: 'byName',
                options: 'Failing for at most',
              },
              properties: [
                {
                  id: 'unit',
                  value: 'dtdurations',
                },
              ],
            },
            {
              matcher: {
                id: 'byName',
                options: '401 answers (24 h)',
              },
              properties: [
                {
                  id: 'unit',
                  value: 'short',
                },
                {
                  id: 'decimals',
                  value: 0,
                },
              ],
            },
          ],
        },
        options: {
          showHeader: true,
          cellHeight: 'sm',
          footer: {
            show: false,
          },
        },
      },
      {
        type: 'state-timeline',
        id: 9,
        title: 'API key status',
        description: "Per org: green while the key is accepted, red while the Petra API answers 401. The red bar's left edge is when the key started failing. An org not yet polled since a start has no bar.",
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 8,
          w: 12,
          x: 12,
          y: 5,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: '%(petra_auth_failure)s' % org,
            range: true,
            instant: false,
            editorMode: 'code',
            legendFormat: '{{org}}',
          },
        ],
        fieldConfig: {
          defaults: {
            mappings: [
              {
                type: 'value',
                options: {
                  '0': {
                    text: 'accepted',
                    color: 'green',
                    index: 0,
                  },
                  '1': {
                    text: 'rejected (401)',
                    color: 'red',
                    index: 1,
                  },
                },
              },
            ],
            color: {
              mode: 'thresholds',
            },
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'green',
                  value: null,
                },
              ],
            },
            custom: {
              fillOpacity: 80,
              lineWidth: 0,
            },
          },
          overrides: [],
        },
        options: {
          mergeValues: true,
          showValue: 'never',
          alignValue: 'left',
          rowHeight: 0.9,
          legend: {
            showLegend: false,
          },
          tooltip: {
            mode: 'single',
          },
        },
      },
      {
        type: 'row',
        id: 10,
        title: 'Usage',
        collapsed: false,
        gridPos: {
          h: 1,
          w: 24,
          x: 0,
          y: 13,
        },
        panels: [],
      },
      {
        type: 'timeseries',
        id: 11,
        title: 'Tenants per org',
        description: 'totalTenants from GET /v1/usage.',
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 8,
          w: 8,
          x: 0,
          y: 14,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'max by (org) (petra_org_tenants{org=~"$org"})',
            range: true,
            instant: false,
            editorMode: 'code',
            legendFormat: '{{org}}',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 10,
              showPoints: 'never',
              spanNulls: false,
              stacking: {
                mode: 'none',
                group: 'A',
              },
              thresholdsStyle: {
                mode: 'off',
              },
            },
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'green',
                  value: null,
                },
              ],
            },
            color: {
              mode: 'palette-classic',
            },
          },
          overrides: [],
        },
        options: {
          legend: {
            displayMode: 'table',
            placement: 'right',
            showLegend: true,
            calcs: [
              'lastNotNull',
              'max',
            ],
          },
          tooltip: {
            mode: 'multi',
            sort: 'desc',
          },
        },
      },
      {
        type: 'timeseries',
        id: 12,
        title: 'Licensed users per org',
        description: "totalLicensedUsers summed over each org's tenants.",
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 8,
          w: 8,
          x: 8,
          y: 14,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'sum by (org) (max by (org, tenant_id) (petra_tenant_licensed_users{org=~"$org"}))',
            range: true,
            instant: false,
            editorMode: 'code',
            legendFormat: '{{org}}',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 10,
              showPoints: 'never',
              spanNulls: false,
              stacking: {
                mode: 'none',
                group: 'A',
              },
              thresholdsStyle: {
                mode: 'off',
              },
            },
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'green',
                  value: null,
                },
              ],
            },
            color: {
              mode: 'palette-classic',
            },
          },
          overrides: [],
        },
        options: {
          legend: {
            displayMode: 'table',
            placement: 'right',
            showLegend: true,
            calcs: [
              'lastNotNull',
              'max',
            ],
          },
          tooltip: {
            mode: 'multi',
            sort: 'desc',
          },
        },
      },
      {
        type: 'timeseries',
        id: 13,
        title: 'Billable users this month per org',
        description: "billableUsersThisMonth summed over each org's tenants.",
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 8,
          w: 8,
          x: 16,
          y: 14,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'sum by (org) (max by (org, tenant_id) (petra_tenant_billable_users{org=~"$org"}))',
            range: true,
            instant: false,
            editorMode: 'code',
            legendFormat: '{{org}}',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 10,
              showPoints: 'never',
              spanNulls: false,
              stacking: {
                mode: 'none',
                group: 'A',
              },
              thresholdsStyle: {
                mode: 'off',
              },
            },
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'green',
                  value: null,
                },
              ],
            },
            color: {
              mode: 'palette-classic',
            },
          },
          overrides: [],
        },
        options: {
          legend: {
            displayMode: 'table',
            placement: 'right',
            showLegend: true,
            calcs: [
              'lastNotNull',
              'max',
            ],
          },
          tooltip: {
            mode: 'multi',
            sort: 'desc',
          },
        },
      },
      {
        type: 'timeseries',
        id: 14,
        title: 'Licensed users per tenant',
        description: 'totalLicensedUsers per tenant.',
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 8,
          w: 12,
          x: 0,
          y: 22,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'max by (org, tenant_id) (petra_tenant_licensed_users{org=~"$org", tenant_id=~"$tenant"}) * on (org, tenant_id) group_left (display_name) max by (org, tenant_id, display_name) (petra_tenant_info{org=~"$org", tenant_id=~"$tenant"})',
            range: true,
            instant: false,
            editorMode: 'code',
            legendFormat: '{{org}} / {{display_name}} ({{tenant_id}})',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 10,
              showPoints: 'never',
              spanNulls: false,
              stacking: {
                mode: 'none',
                group: 'A',
              },
              thresholdsStyle: {
                mode: 'off',
              },
            },
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'green',
                  value: null,
                },
              ],
            },
            color: {
              mode: 'palette-classic',
            },
          },
          overrides: [],
        },
        options: {
          legend: {
            displayMode: 'table',
            placement: 'right',
            showLegend: true,
            calcs: [
              'lastNotNull',
              'max',
            ],
          },
          tooltip: {
            mode: 'multi',
            sort: 'desc',
          },
        },
      },
      {
        type: 'timeseries',
        id: 15,
        title: 'Billable users per tenant',
        description: 'billableUsersThisMonth per tenant.',
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 8,
          w: 12,
          x: 12,
          y: 22,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'max by (org, tenant_id) (petra_tenant_billable_users{org=~"$org", tenant_id=~"$tenant"}) * on (org, tenant_id) group_left (display_name) max by (org, tenant_id, display_name) (petra_tenant_info{org=~"$org", tenant_id=~"$tenant"})',
            range: true,
            instant: false,
            editorMode: 'code',
            legendFormat: '{{org}} / {{display_name}} ({{tenant_id}})',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 10,
              showPoints: 'never',
              spanNulls: false,
              stacking: {
                mode: 'none',
                group: 'A',
              },
              thresholdsStyle: {
                mode: 'off',
              },
            },
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'green',
                  value: null,
                },
              ],
            },
            color: {
              mode: 'palette-classic',
            },
          },
          overrides: [],
        },
        options: {
          legend: {
            displayMode: 'table',
            placement: 'right',
            showLegend: true,
            calcs: [
              'lastNotNull',
              'max',
            ],
          },
          tooltip: {
            mode: 'multi',
            sort: 'desc',
          },
        },
      },
      {
        type: 'table',
        id: 16,
        title: 'Tenants',
        description: 'The selected tenants as the Petra API last reported them.',
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 10,
          w: 24,
          x: 0,
          y: 30,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'max by (org, tenant_id, display_name, microsoft_tenant_id, petra_service, billable_status) (petra_tenant_info{org=~"$org", tenant_id=~"$tenant"})',
            range: false,
            instant: true,
            editorMode: 'code',
            format: 'table',
          },
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'B',
            expr: 'max by (org, tenant_id) (petra_tenant_licensed_users{org=~"$org", tenant_id=~"$tenant"})',
            range: false,
            instant: true,
            editorMode: 'code',
            format: 'table',
          },
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'C',
            expr: 'max by (org, tenant_id) (petra_tenant_billable_users{org=~"$org", tenant_id=~"$tenant"})',
            range: false,
            instant: true,
            editorMode: 'code',
            format: 'table',
          },
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'D',
            expr: 'max by (org, tenant_id) (petra_tenant_prorating_ratio{org=~"$org", tenant_id=~"$tenant"})',
            range: false,
            instant: true,
            editorMode: 'code',
            format: 'table',
          },
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'E',
            expr: 'max by (org, tenant_id) (petra_tenant_paused{org=~"$org", tenant_id=~"$tenant"})',
            range: false,
            instant: true,
            editorMode: 'code',
            format: 'table',
          },
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'F',
            expr: '1000 * max by (org, tenant_id) (petra_tenant_onboarding_timestamp_seconds{org=~"$org", tenant_id=~"$tenant"})',
            range: false,
            instant: true,
            editorMode: 'code',
            format: 'table',
          },
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'G',
            expr: '1000 * max by (org, tenant_id) (petra_tenant_first_billable_timestamp_seconds{org=~"$org", tenant_id=~"$tenant"})',
            range: false,
            instant: true,
            editorMode: 'code',
            format: 'table',
          },
        ],
        transformations: [
          {
            id: 'merge',
            options: {},
          },
          {
            id: 'organize',
            options: {
              excludeByName: {
                Time: true,
                'Value #A': true,
              },
              renameByName: {
                org: 'Org',
                tenant_id: 'Tenant ID',
                display_name: 'Name',
                microsoft_tenant_id: 'Microsoft tenant',
                petra_service: 'Service',
                billable_status: 'Billable status',
                'Value #B': 'Licensed users',
                'Value #C': 'Billable users',
                'Value #D': 'Prorating',
                'Value #E': 'Paused',
                'Value #F': 'Onboarded',
                'Value #G': 'First billable',
              },
              indexByName: {},
            },
          },
        ],
        fieldConfig: {
          defaults: {
            custom: {
              align: 'auto',
              cellOptions: {
                type: 'auto',
              },
            },
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'text',
                  value: null,
                },
              ],
            },
          },
          overrides: [
            {
              matcher: {
                id: 'byName',
                options: 'Prorating',
              },
              properties: [
                {
                  id: 'unit',
                  value: 'percentunit',
                },
              ],
            },
            {
              matcher: {
                id: 'byName',
                options: 'Onboarded',
              },
              properties: [
                {
                  id: 'unit',
                  value: 'dateTimeAsSystem',
                },
              ],
            },
            {
              matcher: {
                id: 'byName',
                options: 'First billable',
              },
              properties: [
                {
                  id: 'unit',
                  value: 'dateTimeAsSystem',
                },
              ],
            },
            {
              matcher: {
                id: 'byName',
                options: 'Paused',
              },
              properties: [
                {
                  id: 'mappings',
                  value: [
                    {
                      type: 'value',
                      options: {
                        '0': {
                          text: 'no',
                          color: 'text',
                          index: 0,
                        },
                        '1': {
                          text: 'paused',
                          color: 'orange',
                          index: 1,
                        },
                      },
                    },
                  ],
                },
              ],
            },
          ],
        },
        options: {
          showHeader: true,
          cellHeight: 'sm',
          footer: {
            show: false,
          },
        },
      },
      {
        type: 'row',
        id: 29,
        title: 'Incidents',
        collapsed: false,
        gridPos: {
          h: 1,
          w: 24,
          x: 0,
          y: 40,
        },
        panels: [],
      },
      {
        type: 'stat',
        id: 30,
        title: 'Incidents not remediated',
        description: 'Incidents created in the last lookback_days (incidents.lookback_days) whose remediationStatus is not REMEDIATED, over the selected orgs. Alert: PetraIncidentNotRemediated. Only with incidents.enabled.',
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 4,
          w: 6,
          x: 0,
          y: 41,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'sum(max by (org, tenant_id, remediation_status) (petra_tenant_incidents{org=~"$org", remediation_status!="REMEDIATED"})) or vector(0)',
            range: false,
            instant: true,
            editorMode: 'code',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'green',
                  value: null,
                },
                {
                  color: 'red',
                  value: 1,
                },
              ],
            },
            mappings: [],
            color: {
              mode: 'thresholds',
            },
          },
          overrides: [],
        },
        options: {
          reduceOptions: {
            calcs: [
              'lastNotNull',
            ],
            fields: '',
            values: false,
          },
          colorMode: 'value',
          graphMode: 'none',
          textMode: 'auto',
          justifyMode: 'auto',
          orientation: 'auto',
        },
      },
      {
        type: 'stat',
        id: 31,
        title: 'Tenants with incidents',
        description: 'Tenants with at least one incident created in the window, remediated or not.',
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 4,
          w: 6,
          x: 6,
          y: 41,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'count(count by (org, tenant_id) (petra_tenant_incidents{org=~"$org"})) or vector(0)',
            range: false,
            instant: true,
            editorMode: 'code',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'green',
                  value: null,
                },
              ],
            },
            mappings: [],
            color: {
              mode: 'thresholds',
            },
          },
          overrides: [],
        },
        options: {
          reduceOptions: {
            calcs: [
              'lastNotNull',
            ],
            fields: '',
            values: false,
          },
          colorMode: 'value',
          graphMode: 'none',
          textMode: 'auto',
          justifyMode: 'auto',
          orientation: 'auto',
        },
      },
      {
        type: 'stat',
        id: 32,
        title: 'Incidents polls failing',
        description: 'Orgs whose last GET /v1/incidents poll failed. Alert: PetraIncidentsStale.',
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 4,
          w: 6,
          x: 12,
          y: 41,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'count(%(petra_incidents_up)s == 0) or vector(0)' % org,
            range: false,
            instant: true,
            editorMode: 'code',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'green',
                  value: null,
                },
                {
                  color: 'red',
                  value: 1,
                },
              ],
            },
            mappings: [],
            color: {
              mode: 'thresholds',
            },
          },
          overrides: [],
        },
        options: {
          reduceOptions: {
            calcs: [
              'lastNotNull',
            ],
            fields: '',
            values: false,
          },
          colorMode: 'value',
          graphMode: 'none',
          textMode: 'auto',
          justifyMode: 'auto',
          orientation: 'auto',
        },
      },
      {
        type: 'stat',
        id: 33,
        title: 'Counts are lower bounds',
        description: 'Orgs whose last incidents answer was full (500 incidents): older incidents of the window may be missing. Lower incidents.lookback_days.',
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 4,
          w: 6,
          x: 18,
          y: 41,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'count(max by (org) (petra_incidents_truncated{org=~"$org"}) == 1) or vector(0)',
            range: false,
            instant: true,
            editorMode: 'code',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'green',
                  value: null,
                },
                {
                  color: 'orange',
                  value: 1,
                },
              ],
            },
            mappings: [],
            color: {
              mode: 'thresholds',
            },
          },
          overrides: [],
        },
        options: {
          reduceOptions: {
            calcs: [
              'lastNotNull',
            ],
            fields: '',
            values: false,
          },
          colorMode: 'value',
          graphMode: 'none',
          textMode: 'auto',
          justifyMode: 'auto',
          orientation: 'auto',
        },
      },
      {
        type: 'timeseries',
        id: 34,
        title: 'Incidents per tenant and status',
        description: 'Incidents created in the last lookback_days per tenant, by remediationStatus as Petra spells it. Stacked.',
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 9,
          w: 12,
          x: 0,
          y: 45,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'max by (org, tenant_id, remediation_status) (petra_tenant_incidents{org=~"$org", tenant_id=~"$tenant"})',
            range: true,
            instant: false,
            editorMode: 'code',
            legendFormat: '{{org}} {{tenant_id}} {{remediation_status}}',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            custom: {
              drawStyle: 'bars',
              lineWidth: 1,
              fillOpacity: 80,
              showPoints: 'never',
              spanNulls: false,
              stacking: {
                mode: 'normal',
                group: 'A',
              },
              thresholdsStyle: {
                mode: 'off',
              },
            },
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'green',
                  value: null,
                },
              ],
            },
            color: {
              mode: 'palette-classic',
            },
          },
          overrides: [],
        },
        options: {
          legend: {
            displayMode: 'table',
            placement: 'right',
            showLegend: true,
            calcs: [
              'lastNotNull',
              'max',
            ],
          },
          tooltip: {
            mode: 'multi',
            sort: 'desc',
          },
        },
      },
      {
        type: 'table',
        id: 35,
        title: 'Incidents by tenant',
        description: "Per tenant and status: incidents of the window, and when the tenant's newest incident was created. No user data: open the incident's URL from the incident_detected log line.",
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 9,
          w: 12,
          x: 12,
          y: 45,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'max by (org, tenant_id, remediation_status) (petra_tenant_incidents{org=~"$org", tenant_id=~"$tenant"})',
            range: false,
            instant: true,
            editorMode: 'code',
            format: 'table',
          },
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'B',
            expr: '1000 * max by (org, tenant_id) (petra_tenant_last_incident_timestamp_seconds{org=~"$org", tenant_id=~"$tenant"})',
            range: false,
            instant: true,
            editorMode: 'code',
            format: 'table',
          },
        ],
        transformations: [
          {
            id: 'merge',
            options: {},
          },
          {
            id: 'organize',
            options: {
              excludeByName: {
                Time: true,
              },
              renameByName: {
                org: 'Org',
                tenant_id: 'Tenant ID',
                remediation_status: 'Status',
                'Value #A': 'Incidents',
                'Value #B': 'Newest incident',
              },
            },
          },
        ],
        fieldConfig: {
          defaults: {
            custom: {
              align: 'auto',
              cellOptions: {
                type: 'auto',
              },
            },
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'text',
                  value: null,
                },
              ],
            },
          },
          overrides: [
            {
              matcher: {
                id: 'byName',
                options: 'Newest incident',
              },
              properties: [
                {
                  id: 'unit',
                  value: 'dateTimeAsSystem',
                },
              ],
            },
          ],
        },
        options: {
          showHeader: true,
          cellHeight: 'sm',
          footer: {
            show: false,
          },
        },
      },
      {
        type: 'row',
        id: 17,
        title: 'Polling',
        collapsed: false,
        gridPos: {
          h: 1,
          w: 24,
          x: 0,
          y: 54,
        },
        panels: [],
      },
      {
        type: 'timeseries',
        id: 18,
        title: 'Petra API answers by status code',
        description: 'Requests to GET /v1/usage per second, by HTTP status ("error": no answer).',
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 8,
          w: 12,
          x: 0,
          y: 55,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'sum by (code) (rate(petra_api_requests_total{org=~"$org"}[$__rate_interval]))',
            range: true,
            instant: false,
            editorMode: 'code',
            legendFormat: '{{code}}',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'reqps',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 10,
              showPoints: 'never',
              spanNulls: false,
              stacking: {
                mode: 'normal',
                group: 'A',
              },
              thresholdsStyle: {
                mode: 'off',
              },
            },
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'green',
                  value: null,
                },
              ],
            },
            color: {
              mode: 'palette-classic',
            },
          },
          overrides: [],
        },
        options: {
          legend: {
            displayMode: 'table',
            placement: 'right',
            showLegend: true,
            calcs: [
              'lastNotNull',
              'max',
            ],
          },
          tooltip: {
            mode: 'multi',
            sort: 'desc',
          },
        },
      },
      {
        type: 'timeseries',
        id: 19,
        title: 'Poll success ratio (1 h)',
        description: 'Share of requests answered 200 over the preceding hour, per org (orgs without requests in that hour are left out rather than shown as 0/0).',
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 8,
          w: 12,
          x: 12,
          y: 55,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'sum by (org) (increase(petra_api_requests_total{org=~"$org", code="200"}[1h])) / (sum by (org) (increase(petra_api_requests_total{org=~"$org"}[1h])) > 0)',
            range: true,
            instant: false,
            editorMode: 'code',
            legendFormat: '{{org}}',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'percentunit',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 10,
              showPoints: 'never',
              spanNulls: false,
              stacking: {
                mode: 'none',
                group: 'A',
              },
              thresholdsStyle: {
                mode: 'off',
              },
            },
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'green',
                  value: null,
                },
              ],
            },
            color: {
              mode: 'palette-classic',
            },
            min: 0,
            max: 1,
          },
          overrides: [],
        },
        options: {
          legend: {
            displayMode: 'table',
            placement: 'right',
            showLegend: true,
            calcs: [
              'lastNotNull',
              'max',
            ],
          },
          tooltip: {
            mode: 'multi',
            sort: 'desc',
          },
        },
      },
      {
        type: 'timeseries',
        id: 20,
        title: 'Rate-limited answers (429)',
        description: '429 answers over the preceding hour, per org. Alert PetraRateLimited fires when they keep coming for 30 minutes.',
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 8,
          w: 8,
          x: 0,
          y: 63,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'sum by (org) (increase(petra_rate_limited_total{org=~"$org"}[1h]))',
            range: true,
            instant: false,
            editorMode: 'code',
            legendFormat: '{{org}}',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            custom: {
              drawStyle: 'bars',
              lineWidth: 1,
              fillOpacity: 80,
              showPoints: 'never',
              spanNulls: false,
              stacking: {
                mode: 'none',
                group: 'A',
              },
              thresholdsStyle: {
                mode: 'off',
              },
            },
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'green',
                  value: null,
                },
              ],
            },
            color: {
              mode: 'palette-classic',
            },
          },
          overrides: [],
        },
        options: {
          legend: {
            displayMode: 'table',
            placement: 'right',
            showLegend: true,
            calcs: [
              'lastNotNull',
              'max',
            ],
          },
          tooltip: {
            mode: 'multi',
            sort: 'desc',
          },
        },
      },
      {
        type: 'timeseries',
        id: 21,
        title: 'Poll duration',
        description: "Duration of each org's last poll.",
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 8,
          w: 8,
          x: 8,
          y: 63,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'max by (org) (petra_poll_duration_seconds{org=~"$org"})',
            range: true,
            instant: false,
            editorMode: 'code',
            legendFormat: '{{org}}',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 's',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 10,
              showPoints: 'never',
              spanNulls: false,
              stacking: {
                mode: 'none',
                group: 'A',
              },
              thresholdsStyle: {
                mode: 'off',
              },
            },
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'green',
                  value: null,
                },
              ],
            },
            color: {
              mode: 'palette-classic',
            },
          },
          overrides: [],
        },
        options: {
          legend: {
            displayMode: 'table',
            placement: 'right',
            showLegend: true,
            calcs: [
              'lastNotNull',
              'max',
            ],
          },
          tooltip: {
            mode: 'multi',
            sort: 'desc',
          },
        },
      },
      {
        type: 'timeseries',
        id: 22,
        title: 'Data age',
        description: "Time since each org's last successful poll, and since Petra generated the report it returned. The red line is PetraUsageStale's threshold.",
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 8,
          w: 8,
          x: 16,
          y: 63,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'time() - max by (org) (petra_last_success_timestamp_seconds{org=~"$org"} > 0)',
            range: true,
            instant: false,
            editorMode: 'code',
            legendFormat: '{{org}} last success',
          },
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'B',
            expr: 'time() - max by (org) (petra_usage_report_generated_timestamp_seconds{org=~"$org"} > 0)',
            range: true,
            instant: false,
            editorMode: 'code',
            legendFormat: '{{org}} report generated',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 's',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 10,
              showPoints: 'never',
              spanNulls: false,
              stacking: {
                mode: 'none',
                group: 'A',
              },
              thresholdsStyle: {
                mode: 'line',
              },
            },
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'green',
                  value: null,
                },
                {
                  color: 'red',
                  value: 1800,
                },
              ],
            },
            color: {
              mode: 'palette-classic',
            },
          },
          overrides: [],
        },
        options: {
          legend: {
            displayMode: 'table',
            placement: 'right',
            showLegend: true,
            calcs: [
              'lastNotNull',
              'max',
            ],
          },
          tooltip: {
            mode: 'multi',
            sort: 'desc',
          },
        },
      },
      {
        type: 'state-timeline',
        id: 23,
        title: 'Last poll result',
        description: 'Per org: green while the last poll succeeded (petra_up), red while it failed, grey while the org is pending: configured but not polled yet since a start, so there is no petra_up sample. Pending is not a failure.',
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 6,
          w: 24,
          x: 0,
          y: 71,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: '%(petra_up)s or (max by (org) (petra_api_requests_total{org=~"$org", code="200"}) * 0 - 1)' % org,
            range: true,
            instant: false,
            editorMode: 'code',
            legendFormat: '{{org}}',
          },
        ],
        fieldConfig: {
          defaults: {
            mappings: [
              {
                type: 'value',
                options: {
                  '-1': {
                    text: 'pending',
                    color: '#8e8e8e',
                    index: 0,
                  },
                  '0': {
                    text: 'failed',
                    color: 'red',
                    index: 1,
                  },
                  '1': {
                    text: 'ok',
                    color: 'green',
                    index: 2,
                  },
                },
              },
            ],
            color: {
              mode: 'thresholds',
            },
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'green',
                  value: null,
                },
              ],
            },
            custom: {
              fillOpacity: 80,
              lineWidth: 0,
            },
          },
          overrides: [],
        },
        options: {
          mergeValues: true,
          showValue: 'never',
          alignValue: 'left',
          rowHeight: 0.9,
          legend: {
            showLegend: false,
          },
          tooltip: {
            mode: 'single',
          },
        },
      },
      {
        type: 'row',
        id: 24,
        title: 'Collector',
        collapsed: false,
        gridPos: {
          h: 1,
          w: 24,
          x: 0,
          y: 77,
        },
        panels: [],
      },
      {
        type: 'stat',
        id: 25,
        title: 'Collector targets up',
        description: 'petra-collector replicas (and shards) Prometheus scrapes successfully.',
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 4,
          w: 4,
          x: 0,
          y: 78,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'sum(up{%s})' % config.selector,
            range: false,
            instant: true,
            editorMode: 'code',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'red',
                  value: null,
                },
                {
                  color: 'green',
                  value: 1,
                },
              ],
            },
            mappings: [],
            color: {
              mode: 'thresholds',
            },
          },
          overrides: [],
        },
        options: {
          reduceOptions: {
            calcs: [
              'lastNotNull',
            ],
            fields: '',
            values: false,
          },
          colorMode: 'value',
          graphMode: 'none',
          textMode: 'auto',
          justifyMode: 'auto',
          orientation: 'auto',
        },
      },
      {
        type: 'stat',
        id: 26,
        title: 'Orgs configured',
        description: 'Orgs configured in the collectors (replicas and shards together), each counted once.',
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 4,
          w: 4,
          x: 4,
          y: 78,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'count(count by (org) (petra_api_requests_total))',
            range: false,
            instant: true,
            editorMode: 'code',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'text',
                  value: null,
                },
              ],
            },
            mappings: [],
            color: {
              mode: 'thresholds',
            },
          },
          overrides: [],
        },
        options: {
          reduceOptions: {
            calcs: [
              'lastNotNull',
            ],
            fields: '',
            values: false,
          },
          colorMode: 'value',
          graphMode: 'none',
          textMode: 'auto',
          justifyMode: 'auto',
          orientation: 'auto',
        },
      },
      {
        type: 'stat',
        id: 27,
        title: 'Config reload',
        description: "Whether every collector's last config (re)load succeeded. Alert: PetraCollectorConfigReloadFailed.",
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 4,
          w: 4,
          x: 8,
          y: 78,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'min(petra_collector_config_last_reload_successful)',
            range: false,
            instant: true,
            editorMode: 'code',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'text',
                  value: null,
                },
              ],
            },
            mappings: [
              {
                type: 'value',
                options: {
                  '0': {
                    text: 'FAILED',
                    color: 'red',
                    index: 0,
                  },
                  '1': {
                    text: 'OK',
                    color: 'green',
                    index: 1,
                  },
                },
              },
            ],
            color: {
              mode: 'thresholds',
            },
          },
          overrides: [],
        },
        options: {
          reduceOptions: {
            calcs: [
              'lastNotNull',
            ],
            fields: '',
            values: false,
          },
          colorMode: 'value',
          graphMode: 'none',
          textMode: 'auto',
          justifyMode: 'auto',
          orientation: 'auto',
        },
      },
      {
        type: 'table',
        id: 28,
        title: 'Collector instances',
        description: 'Version and last successful config load of each instance.',
        datasource: {
          type: 'prometheus',
          uid: '${datasource}',
        },
        gridPos: {
          h: 4,
          w: 12,
          x: 12,
          y: 78,
        },
        targets: [
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'A',
            expr: 'max by (instance, version) (petra_collector_build_info)',
            range: false,
            instant: true,
            editorMode: 'code',
            format: 'table',
          },
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'B',
            expr: '1000 * max by (instance) (petra_collector_config_last_reload_success_timestamp_seconds)',
            range: false,
            instant: true,
            editorMode: 'code',
            format: 'table',
          },
          {
            datasource: {
              type: 'prometheus',
              uid: '${datasource}',
            },
            refId: 'C',
            expr: 'max by (instance) (petra_collector_orgs)',
            range: false,
            instant: true,
            editorMode: 'code',
            format: 'table',
          },
        ],
        transformations: [
          {
            id: 'merge',
            options: {},
          },
          {
            id: 'organize',
            options: {
              excludeByName: {
                Time: true,
                'Value #A': true,
              },
              renameByName: {
                instance: 'Instance',
                version: 'Version',
                'Value #B': 'Config loaded',
                'Value #C': 'Orgs',
              },
              indexByName: {},
            },
          },
        ],
        fieldConfig: {
          defaults: {
            custom: {
              align: 'auto',
              cellOptions: {
                type: 'auto',
              },
            },
            thresholds: {
              mode: 'absolute',
              steps: [
                {
                  color: 'text',
                  value: null,
                },
              ],
            },
          },
          overrides: [
            {
              matcher: {
                id: 'byName',
                options: 'Config loaded',
              },
              properties: [
                {
                  id: 'unit',
                  value: 'dateTimeAsIso',
                },
              ],
            },
          ],
        },
        options: {
          showHeader: true,
          cellHeight: 'sm',
          footer: {
            show: false,
          },
        },
      },
      {
        type: 'row',
        id: 36,
        title: 'Billing',
        collapsed: false,
        gridPos: { h: 1, w: 24, x: 0, y: 82 },
        panels: [],
      },
      {
        type: 'stat',
        id: 37,
        title: 'Projected billable units',
        description: "projectedBillableUnitsThisMonth summed over the selected orgs' tenants: what Petra bills this month (docs/reconciling-an-invoice.md). Only with billing.enabled.",
        datasource: { type: 'prometheus', uid: '${datasource}' },
        gridPos: { h: 4, w: 6, x: 0, y: 83 },
        targets: [
          {
            datasource: { type: 'prometheus', uid: '${datasource}' },
            refId: 'A',
            expr: 'sum(max by (org, tenant_id) (petra_tenant_projected_billable_units{org=~"$org"}))',
            range: false,
            instant: true,
            editorMode: 'code',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            thresholds: {
              mode: 'absolute',
              steps: [{ color: 'green', value: null }],
            },
            mappings: [],
            color: { mode: 'thresholds' },
          },
          overrides: [],
        },
        options: {
          reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
          colorMode: 'value',
          graphMode: 'none',
          textMode: 'auto',
          justifyMode: 'auto',
          orientation: 'auto',
        },
      },
      {
        type: 'stat',
        id: 38,
        title: 'Tenants with stale billing figures',
        description: 'Tenants of the usage report whose billing figures are missing or older than billing.interval_seconds, over the selected orgs. Alert: PetraBillingStale.',
        datasource: { type: 'prometheus', uid: '${datasource}' },
        gridPos: { h: 4, w: 6, x: 6, y: 83 },
        targets: [
          {
            datasource: { type: 'prometheus', uid: '${datasource}' },
            refId: 'A',
            expr: 'sum(min by (org) (petra_billing_tenants_stale{org=~"$org"})) or vector(0)',
            range: false,
            instant: true,
            editorMode: 'code',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            thresholds: {
              mode: 'absolute',
              steps: [{ color: 'green', value: null }, { color: 'orange', value: 1 }],
            },
            mappings: [],
            color: { mode: 'thresholds' },
          },
          overrides: [],
        },
        options: {
          reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
          colorMode: 'value',
          graphMode: 'none',
          textMode: 'auto',
          justifyMode: 'auto',
          orientation: 'auto',
        },
      },
      {
        type: 'stat',
        id: 41,
        title: 'Billing requests failing',
        description: 'Orgs whose last /v1/billable-users request failed (petra_billing_up 0).',
        datasource: { type: 'prometheus', uid: '${datasource}' },
        gridPos: { h: 4, w: 6, x: 12, y: 83 },
        targets: [
          {
            datasource: { type: 'prometheus', uid: '${datasource}' },
            refId: 'A',
            expr: 'count(max by (org) (petra_billing_up{org=~"$org"}) == 0) or vector(0)',
            range: false,
            instant: true,
            editorMode: 'code',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            thresholds: {
              mode: 'absolute',
              steps: [{ color: 'green', value: null }, { color: 'orange', value: 1 }],
            },
            mappings: [],
            color: { mode: 'thresholds' },
          },
          overrides: [],
        },
        options: {
          reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
          colorMode: 'value',
          graphMode: 'none',
          textMode: 'auto',
          justifyMode: 'auto',
          orientation: 'auto',
        },
      },
      {
        type: 'timeseries',
        id: 39,
        title: 'Projected units and billable users per org',
        description: "Per org: the projected billable units of the billing route beside the usage report's billable users of the month (billableUsersThisMonth).",
        datasource: { type: 'prometheus', uid: '${datasource}' },
        gridPos: { h: 9, w: 12, x: 0, y: 87 },
        targets: [
          {
            datasource: { type: 'prometheus', uid: '${datasource}' },
            refId: 'A',
            expr: 'sum by (org) (max by (org, tenant_id) (petra_tenant_projected_billable_units{org=~"$org"}))',
            range: true,
            instant: false,
            editorMode: 'code',
            legendFormat: '{{org}} projected units',
          },
          {
            datasource: { type: 'prometheus', uid: '${datasource}' },
            refId: 'B',
            expr: 'sum by (org) (max by (org, tenant_id) (petra_tenant_billable_users{org=~"$org"}))',
            range: true,
            instant: false,
            editorMode: 'code',
            legendFormat: '{{org}} billable users (usage)',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 0,
              showPoints: 'never',
              spanNulls: false,
              stacking: { mode: 'none', group: 'A' },
              thresholdsStyle: { mode: 'off' },
            },
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
            color: { mode: 'palette-classic' },
          },
          overrides: [],
        },
        options: {
          legend: { displayMode: 'table', placement: 'right', showLegend: true, calcs: ['lastNotNull'] },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
      },
      {
        type: 'timeseries',
        id: 40,
        title: 'Projected units and billable users per tenant',
        description: "Per tenant: projectedBillableUnitsThisMonth beside the usage report's billableUsersThisMonth.",
        datasource: { type: 'prometheus', uid: '${datasource}' },
        gridPos: { h: 9, w: 12, x: 12, y: 87 },
        targets: [
          {
            datasource: { type: 'prometheus', uid: '${datasource}' },
            refId: 'A',
            expr: 'max by (org, tenant_id) (petra_tenant_projected_billable_units{org=~"$org", tenant_id=~"$tenant"})',
            range: true,
            instant: false,
            editorMode: 'code',
            legendFormat: '{{org}} {{tenant_id}} projected units',
          },
          {
            datasource: { type: 'prometheus', uid: '${datasource}' },
            refId: 'B',
            expr: 'max by (org, tenant_id) (petra_tenant_billable_users{org=~"$org", tenant_id=~"$tenant"})',
            range: true,
            instant: false,
            editorMode: 'code',
            legendFormat: '{{org}} {{tenant_id}} billable users (usage)',
          },
        ],
        fieldConfig: {
          defaults: {
            unit: 'short',
            custom: {
              drawStyle: 'line',
              lineWidth: 1,
              fillOpacity: 0,
              showPoints: 'never',
              spanNulls: false,
              stacking: { mode: 'none', group: 'A' },
              thresholdsStyle: { mode: 'off' },
            },
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
            color: { mode: 'palette-classic' },
          },
          overrides: [],
        },
        options: {
          legend: { displayMode: 'table', placement: 'right', showLegend: true, calcs: ['lastNotNull'] },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
      },
    ],
  }
