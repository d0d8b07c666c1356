// What a notification says, once for every channel: a subject and a plain-text body
// for e-mail, and a JSON document for webhooks.
import type { Incident, IncidentEvent } from '../monitoring/incidents.js';
import { incidentView } from '../monitoring/incidents.js';
import { plural } from '../../src/core/plural.js';
import { formatBytes } from '../../src/core/units.js';

export interface Notification {
  /** incident.opened, incident.updated, incident.reminder, incident.resolved, summary.daily */
  event: string;
  subject: string;
  text: string;
  data: Record<string, unknown>;
}

const WHAT: Record<Incident['kind'], string> = {
  'run-failed': 'image run failed',
  'missed-run': 'scheduled image run missed',
  'agent-silent': 'agent silent',
  'low-space': 'repository low on space',
};

function age(ms: number): string {
  const minutes = Math.round(ms / 60000);
  if (minutes < 120) return `${minutes} min`;
  const hours = Math.round(minutes / 60);
  return hours < 48 ? `${hours} h` : `${Math.round(hours / 24)} days`;
}

export function incidentNotification(incident: Incident, event: IncidentEvent, now: number): Notification {
  const tag = { opened: 'PROBLEM', updated: 'PROBLEM', reminder: 'STILL OPEN', resolved: 'RESOLVED' }[event];
  const subject = `[Backup365] ${tag}: ${WHAT[incident.kind]} - ${incident.subject}`;
  const lines =
    event === 'resolved'
      ? [
          `Resolved: ${incident.resolution ?? 'the condition has cleared'}.`,
          '',
          `The incident "${incident.summary}" was open for ${age((incident.resolvedAt ?? now) - incident.openedAt)}.`,
        ]
      : [
          incident.summary,
          '',
          `Incident #${incident.id} (${incident.kind}), open since ${new Date(incident.openedAt).toISOString()} (${age(now - incident.openedAt)}).`,
          ...(incident.occurrences > 1 ? [`Seen ${incident.occurrences} times.`] : []),
          ...Object.entries(incident.detail).map(
            ([key, value]) => `${key}: ${typeof value === 'string' ? value : JSON.stringify(value)}`,
          ),
          '',
          event === 'reminder'
            ? 'This is a reminder: the incident is still open.'
            : 'You will be reminded until it is resolved.',
        ];
  return {
    event: `incident.${event}`,
    subject,
    text: `${lines.join('\n')}\n`,
    data: { event: `incident.${event}`, incident: incidentView(incident) },
  };
}

export interface SummaryFacts {
  since: number;
  now: number;
  runs: { machine: string; ok: number; failed: number; lastImage: string | null }[];
  openIncidents: Incident[];
  images: number;
  storedBytes: number;
  freeBytes: number | null;
}

export function summaryNotification(facts: SummaryFacts): Notification {
  const failed = facts.runs.reduce((sum, row) => sum + row.failed, 0);
  const ok = facts.runs.reduce((sum, row) => sum + row.ok, 0);
  const lines = [
    `Backup365 daily summary, ${new Date(facts.since).toISOString()} to ${new Date(facts.now).toISOString()}`,
    '',
    `Runs: ${ok} succeeded, ${failed} failed.`,
    ...facts.runs.map(
      (row) =>
        `  ${row.machine}: ${row.ok} ok, ${row.failed} failed${row.lastImage ? `, latest image ${row.lastImage}` : ''}`,
    ),
    '',
    facts.openIncidents.length ? `Open incidents: ${facts.openIncidents.length}` : 'No open incidents.',
    ...facts.openIncidents.map(
      (incident) => `  #${incident.id} ${incident.kind} ${incident.subject}: ${incident.summary}`,
    ),
    '',
    `Repository: ${plural(facts.images, 'image')}, ${formatBytes(facts.storedBytes)} stored${facts.freeBytes === null ? '' : `, ${formatBytes(facts.freeBytes)} free`}.`,
  ];
  return {
    event: 'summary.daily',
    subject: `[Backup365] Daily summary: ${ok} ok, ${failed} failed, ${plural(facts.openIncidents.length, 'open incident')}`,
    text: `${lines.join('\n')}\n`,
    data: {
      event: 'summary.daily',
      summary: {
        since: new Date(facts.since).toISOString(),
        until: new Date(facts.now).toISOString(),
        runs: facts.runs,
        openIncidents: facts.openIncidents.map(incidentView),
        images: facts.images,
        storedBytes: facts.storedBytes,
        freeBytes: facts.freeBytes,
      },
    },
  };
}
