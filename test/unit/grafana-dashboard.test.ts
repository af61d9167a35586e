// deploy/grafana-dashboard.json: valid JSON whose every query names metrics the service really exports.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { PrometheusMetrics } from '../../src/metrics/prometheus.js';

/** Compiled location is dist/test/unit/; deploy/ is at the package root. */
const DASHBOARD = fileURLToPath(new URL('../../../deploy/grafana-dashboard.json', import.meta.url));

interface Panel {
  type: string;
  title: string;
  targets?: { expr: string }[];
  panels?: Panel[];
}

const HISTOGRAM_SERIES = /_(bucket|sum|count)$/;

/** Metric names a PromQL expression uses: identifiers followed by `{`, `[`, `)` or an operator, not functions. */
function metricNames(expr: string): string[] {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  return [...withoutStrings.matchAll(/\b(sftppush_\w+|process_\w+|nodejs_\w+)\b/g)].map((m) => m[1]!);
}

void test('the Grafana dashboard parses, and every metric it queries is in the registry', async () => {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { title: string; panels: Panel[]; templating: { list: { query?: unknown }[] } };
  const registry = new PrometheusMetrics(['/srv/a'], Date.now).registry;
  const exported = new Map((await registry.getMetricsAsJSON()).map((m) => [m.name, String(m.type)]));
  const exists = (name: string): boolean =>
    exported.has(name) || (HISTOGRAM_SERIES.test(name) && exported.get(name.replace(HISTOGRAM_SERIES, '')) === 'histogram');

  const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');
  assert.ok(panels.length >= 10, 'a dashboard, not a stub');
  const expressions = [
    ...panels.flatMap((panel) => {
      assert.ok(panel.targets && panel.targets.length > 0, `panel "${panel.title}" has a query`);
      return panel.targets.map((t) => t.expr);
    }),
    ...dashboard.templating.list.map((v) => JSON.stringify(v.query ?? '')),
  ];
  const used = new Set(expressions.flatMap(metricNames));
  const missing = [...used].filter((name) => !exists(name));
  assert.deepEqual(missing, [], 'metrics the dashboard queries but the service does not export');
  // And the other way round: every sftppush metric has a panel.
  const shown = new Set([...used].map((name) => (exported.has(name) ? name : name.replace(HISTOGRAM_SERIES, ''))));
  const unshown = [...exported.keys()].filter((name) => name.startsWith('sftppush_') && !shown.has(name));
  assert.deepEqual(unshown, [], 'sftppush metrics without a panel');
});
