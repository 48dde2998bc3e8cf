// The alerting rules. Rendered into deploy/prometheus/alerts.yml and
// deploy/kubernetes/base/prometheusrule.yaml (render.py); their unit tests
// are deploy/prometheus/alerts_test.yml.
//
// Replicas: org alerts aggregate across the replicas of a job (see
// aggregate.libsonnet), so their labels are groupLabels, org and severity,
// with no `instance`: each fires once per org however many replicas run.
//
// `keep_firing_for` (Prometheus 2.42 or later) keeps an alert firing while its
// series are missing for a while: a collector restart or a few lost scrapes
// leave a gap in every series, and without it the alert would resolve and
// fire again, sending a false "resolved". The price: a real fix resolves that
// much later. Orgs not yet polled since a start (without a restored state
// file) export no petra_up, petra_auth_failure or last-success sample at all,
// so they look neither failed nor healthy to these rules.
local aggregate = import 'aggregate.libsonnet';

{
  local config = $._config,
  local by = config.groupLabels,
  local org(metric) = aggregate.org(metric, by + ', org'),
  local dashboardUrl = '%s/d/%s/%s' % [config.grafanaUrl, config.dashboardUid, config.dashboardSlug],
  local links(name, perOrg) = {
    runbook_url: config.runbookUrlBase + std.asciiLower(name),
    dashboard_url: dashboardUrl + (if perOrg then '?var-org={{ $labels.org }}' else ''),
  },
  local alert(name, severity, summary, description, perOrg=true) = {
    alert: name,
    labels: { severity: severity },
    annotations: { summary: summary, description: description } + links(name, perOrg),
  },

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'petra-collector',
        rules: [
          alert(
            'PetraApiKeyInvalid',
            'critical',
            'Petra API key of org {{ $labels.org }} is rejected (401)',
            'The Petra API has answered 401 to the key configured for org {{ $labels.org }} for at least 5 minutes: the key is invalid, missing or was deleted in Petra. No usage data is collected for this org until the key is replaced.',
          ) + {
            expr: '%s == 1' % org('petra_auth_failure'),
            'for': '5m',
            // A restart is a gap of a minute or two; without a state file the
            // org is then pending until its first poll, up to one interval (5
            // minutes by default). A "resolved" therefore means the key has
            // been accepted, or its org has been gone, for 10 minutes.
            keep_firing_for: '10m',
          },

          // 1800 s is six polls at the default 300 s interval. Orgs whose key
          // is rejected are left to PetraApiKeyInvalid, so one cause pages
          // once. Pending orgs have no last success, so they never look stale.
          alert(
            'PetraUsageStale',
            'warning',
            'Petra usage of org {{ $labels.org }} is stale',
            'The last successful poll of org {{ $labels.org }} by any collector was {{ $value | humanizeDuration }} ago. The API is failing, timing out or rate-limiting this org; its usage series show old values.',
          ) + {
            expr: |||
              (time() - %s > 1800)
              unless
              (%s == 1)
            ||| % [org('petra_last_success_timestamp_seconds'), org('petra_auth_failure')],
            'for': '10m',
            keep_firing_for: '10m',
          },

          // PetraUsageStale needs a last success to measure from: an org that
          // has failed on every replica since they started (403, 5xx,
          // timeouts) has none. Two cases: its polls fail (petra_up 0), or no
          // replica has had an outcome at all (pending: only its request
          // counter, which every configured org has from the start). After a
          // start every org is first polled within one interval, so a
          // pending org alone fires this only when stuck. The counter has a
          // series per route and code: aggregated, it is one per org.
          alert(
            'PetraOrgNeverPolled',
            'warning',
            'Petra org {{ $labels.org }} has not been polled successfully since start',
            'No collector has had one successful poll of org {{ $labels.org }} since it started, 30 minutes or more ago, and the key is not the reason. The org has no usage series.',
          ) + {
            expr: |||
              (
                (%(up)s == 0)
                or
                (max by (%(by)s, org) (petra_api_requests_total{code="200"}) unless %(up)s)
              )
              unless
              %(success)s
              unless
              (%(auth)s == 1)
            ||| % {
              by: by,
              up: org('petra_up'),
              success: org('petra_last_success_timestamp_seconds'),
              auth: org('petra_auth_failure'),
            },
            'for': '30m',
            keep_firing_for: '10m',
          },

          // Every replica down, or none left in service discovery. One
          // replica down while another is up is PetraCollectorReplicaDown:
          // the org alerts still hear from the other.
          alert(
            'PetraCollectorDown',
            'critical',
            'No petra-collector replica is being scraped',
            'Prometheus has scraped no replica of petra-collector for 5 minutes: every target fails, or there is none (service discovery, relabelling or the deployment is broken). Petra usage and key health are not being watched.',
            perOrg=false,
          ) + {
            expr: |||
              max by (%(by)s) (up{%(selector)s}) == 0
              or
              absent(up{%(selector)s})
            ||| % { by: by, selector: config.selector },
            'for': '5m',
            // A crash loop or a flaky network answers a scrape now and then:
            // that must not resolve the page and raise it again 5 minutes later.
            keep_firing_for: '5m',
          },

          // A rolling update restarts one replica for a minute or two: 5
          // minutes leave room for it. When the last replica goes down too,
          // this stays firing (keep_firing_for) until PetraCollectorDown,
          // which mutes it in Alertmanager, takes over.
          alert(
            'PetraCollectorReplicaDown',
            'warning',
            'petra-collector replica {{ $labels.instance }} cannot be scraped',
            'Prometheus has failed to scrape petra-collector {{ $labels.instance }} for 5 minutes while another replica of the job is up. The other replicas keep every org they poll watched; with sharding and one copy, the orgs of this shard are not.',
            perOrg=false,
          ) + {
            expr: |||
              (up{%(selector)s} == 0)
              and on (%(by)s)
              (max by (%(by)s) (up{%(selector)s}) == 1)
            ||| % { by: by, selector: config.selector },
            'for': '5m',
            keep_firing_for: '5m',
          },

          // One 429 now and then is normal when other programs share a key; a
          // 429 in every 15-minute window for half an hour is not. No
          // keep_firing_for: the 15-minute window already spans a restart's
          // gap, and increase() handles the counter starting again at 0. The
          // replicas' 429s add up: each one is a request Petra refused.
          alert(
            'PetraRateLimited',
            'warning',
            'Petra API keeps rate-limiting org {{ $labels.org }}',
            'The Petra API has answered 429 to org {{ $labels.org }} in every 15-minute window for 30 minutes ({{ $value | humanize }} in the last 15 minutes, all collectors together). Something else probably uses the same key, or the polling interval is too short for the number of replicas.',
          ) + {
            expr: 'sum by (%s, org) (increase(petra_rate_limited_total[15m])) > 0' % by,
            'for': '30m',
          },

          // Per replica: each one reloads its own config.
          alert(
            'PetraCollectorConfigReloadFailed',
            'warning',
            'petra-collector {{ $labels.instance }} failed to reload its config',
            'The last config reload of petra-collector {{ $labels.instance }} failed; it keeps running with the previous config. The next restart will fail until the config file is fixed.',
            perOrg=false,
          ) + {
            expr: 'petra_collector_config_last_reload_successful == 0',
            'for': '5m',
            // Lost scrapes must not resolve it; a restart either loads a good
            // config (a real fix) or fails, which is PetraCollectorReplicaDown
            // or PetraCollectorDown.
            keep_firing_for: '5m',
          },

          // The dead man's switch: always firing, so the heartbeat receiver
          // of deploy/alertmanager/alertmanager.yml hears from Alertmanager
          // every few minutes. When the heartbeats stop, rule evaluation,
          // Prometheus -> Alertmanager or Alertmanager -> receivers is
          // broken. If you already run one (kube-prometheus ships a
          // Watchdog), keep one of the two.
          alert(
            'Watchdog',
            'none',
            'Alerting pipeline heartbeat: always firing',
            'This alert always fires, to prove that Prometheus evaluates the petra-collector rules and that Alertmanager delivers notifications. Its receiver expects it every few minutes; silence from it means the pipeline is broken.',
            perOrg=false,
          ) + { expr: 'vector(1)' },
        ],
      },

      // Incidents (only with `incidents.enabled: true` in the collector's
      // config). For the security team: route them by
      // `alertname=~"PetraIncident.*"`. A collector restart leaves a gap in
      // the series: keep_firing_for rides over it.
      {
        name: 'petra-incidents',
        rules: [
          // Any status but REMEDIATED counts, including UNKNOWN (a missing
          // one). Half an hour leaves room for Petra's own automatic
          // remediation.
          alert(
            'PetraIncidentNotRemediated',
            'critical',
            'Petra incident of tenant {{ $labels.tenant_id }} (org {{ $labels.org }}) is not remediated',
            'Tenant {{ $labels.tenant_id }} of org {{ $labels.org }} has had {{ $value | humanize }} incident(s) with remediation status {{ $labels.remediation_status }} for at least 30 minutes: a Microsoft 365 account may be compromised and is not remediated. The incident_detected log line of each carries its URL in Petra.',
          ) + {
            expr: 'max by (%s, org, tenant_id, remediation_status) (petra_tenant_incidents{remediation_status!="REMEDIATED"}) > 0' % by,
            'for': '30m',
            keep_firing_for: '10m',
          },

          // The newest incident of a tenant was created in the last hour, or
          // changed in the last hour (one created earlier, seen only now: the
          // collector was down or the API late). Resolves an hour later.
          alert(
            'PetraIncidentNew',
            'warning',
            'New Petra incident for tenant {{ $labels.tenant_id }} (org {{ $labels.org }})',
            "Petra created an incident for tenant {{ $labels.tenant_id }} of org {{ $labels.org }} at {{ $value | humanizeTimestamp }}. Its URL in Petra is in the collector's incident_detected log line.",
          ) + {
            expr: |||
              %(last)s > time() - 3600
              or
              (
                %(last)s
                and
                max by (%(by)s, org, tenant_id) (changes(petra_tenant_last_incident_timestamp_seconds[1h])) > 0
              )
            ||| % {
              by: by,
              last: 'max by (%s, org, tenant_id) (petra_tenant_last_incident_timestamp_seconds)' % by,
            },
            'for': '1m',
            keep_firing_for: '10m',
          },

          // The incident alerts above see nothing new while this fires. Orgs
          // whose key is rejected are left to PetraApiKeyInvalid.
          alert(
            'PetraIncidentsStale',
            'warning',
            'Petra incidents of org {{ $labels.org }} are stale',
            'The last successful incidents poll of org {{ $labels.org }} by any collector was {{ $value | humanizeDuration }} ago. New incidents of this org are not seen until the incidents route answers again.',
          ) + {
            expr: |||
              (time() - %s > 1800)
              unless
              (%s == 1)
            ||| % [org('petra_incidents_last_success_timestamp_seconds'), org('petra_auth_failure')],
            'for': '10m',
            keep_firing_for: '10m',
          },
        ],
      },

      // Billable users (only with `billing.enabled: true`). A tenant's
      // figures are stale when missing or older than billing.interval_seconds
      // (a day by default). Just after a start without a state file, or when a
      // tenant appears, a round has to reach it first: 20 minutes for 10
      // tenants at the default budget, so two hours leave room for that and
      // for a few failed requests. A short budget (billing_budget_short) keeps
      // it firing: that is the point. Rejected keys are PetraApiKeyInvalid's.
      {
        name: 'petra-billing',
        rules: [
          alert(
            'PetraBillingStale',
            'warning',
            'Petra billing figures of org {{ $labels.org }} are stale',
            '{{ $value | humanize }} tenant(s) of org {{ $labels.org }} have had no billable-users figures younger than billing.interval_seconds for two hours, on every collector: invoices re-billed from petra_tenant_projected_billable_units would miss or misstate them.',
          ) + {
            expr: |||
              (%s > 0)
              unless
              (%s == 1)
            ||| % [org('petra_billing_tenants_stale'), org('petra_auth_failure')],
            'for': '2h',
            keep_firing_for: '10m',
          },
        ],
      },
    ],
  },
}
