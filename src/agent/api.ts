// The agent's calls to the server. Each is tried once: the agent has its own retry
// schedule (backoff, a report outbox), so a dead server never holds up its loop.
import type { Policy } from '../format/policy.js';
import { parsePolicy } from '../format/policy.js';
import type { RunReport } from '../format/run-report.js';
import { HttpClient } from '../client/http.js';
import type { Logger } from '../core/log.js';

export interface AgentSettings {
  heartbeatSeconds: number;
  retryInitialSeconds: number;
  retryMaxSeconds: number;
}

export interface PolicyAnswer {
  machine: string;
  policy: Policy;
  policyChangedAt: string | null;
  agent: AgentSettings;
  serverTime: string;
}

export class AgentApi {
  private readonly http: HttpClient;

  constructor(server: string, token: string, log: Logger, fingerprint?: string) {
    this.http = new HttpClient({ server, token, log, retryForMs: 0, connections: 2, fingerprint });
  }

  get server(): string {
    return this.http.server;
  }

  /** The certificate of the server last talked to (null over plain HTTP). */
  get serverCertificate() {
    return this.http.serverCertificate;
  }

  async policy(): Promise<PolicyAnswer> {
    const answer = await this.http.call<PolicyAnswer>('GET', '/agent/policy');
    return { ...answer, policy: parsePolicy(answer.policy, 'policy from the server') };
  }

  heartbeat(body: {
    hostname: string;
    version: string;
    state: string;
    nextRunAt: string | null;
    currentRun: string | null;
  }): Promise<{ policyChangedAt: string | null; serverTime: string }> {
    return this.http.call('POST', '/agent/heartbeat', { json: body });
  }

  putReport(report: RunReport): Promise<unknown> {
    return this.http.call('PUT', `/runs/${encodeURIComponent(report.id)}`, { json: report });
  }

  close(): Promise<void> {
    return this.http.close();
  }
}
