// How each per-org gauge merges across the replicas of a job. Replicas poll
// on their own, so for a while they may disagree; the alerts and the
// dashboard take one value per org, chosen per metric:
// - max for "is it up" and "when did it last succeed": one replica that
//   polls the org well is enough.
// - min for petra_auth_failure: every replica with an outcome sees the 401,
//   and a replica that reads a rotated key file later does not hold the
//   alert on once another has had the new key accepted.
// A replica that has no outcome for an org yet (pending after a start
// without a state file) exports none of these gauges for it, so it takes
// no part in max or min, and cannot resolve or fire an alert another
// replica holds. Counters are summed as rates: each replica's requests are
// real requests to Petra.
{
  perOrg:: {
    petra_up: 'max',
    petra_auth_failure: 'min',
    petra_last_success_timestamp_seconds: 'max',
    petra_incidents_up: 'max',
    petra_incidents_last_success_timestamp_seconds: 'max',
    // Billing (contract, "Billable users"): harmless while no collector exports it.
    petra_billing_up: 'max',
    petra_billing_last_success_timestamp_seconds: 'max',
    // One replica with fresh figures for every tenant is enough.
    petra_billing_tenants_stale: 'min',
  },

  selected(metric, matchers):: if matchers == '' then metric else '%s{%s}' % [metric, matchers],

  // `min by (job, org) (petra_auth_failure)`: one value per org.
  org(metric, by, matchers=''):: '%s by (%s) (%s)' % [self.perOrg[metric], by, self.selected(metric, matchers)],
}
