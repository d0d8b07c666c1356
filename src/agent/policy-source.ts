// This machine's policy as the agent knows it: fetched from the server every hour (or when
// a heartbeat says it changed), kept in policy.json so that the agent follows its last
// policy while the server is away, and refetched with backoff after a failure.
import { AuthError, UntrustedServerError, errorMessage } from '../core/errors.js';
import { Backoff, type BackoffPolicy } from '../core/backoff.js';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { AgentApi, AgentSettings, PolicyAnswer } from './api.js';
import type { AgentStateFiles } from './state-files.js';

const DEFAULT_SETTINGS: AgentSettings = { heartbeatSeconds: 300, retryInitialSeconds: 60, retryMaxSeconds: 1800 };
const POLICY_REFRESH_MS = 3600_000;

/** How a successful fetch changed what the agent knew. */
export interface PolicyChange {
  /** The agent had no policy at all before (none cached either). */
  first: boolean;
  /** The policy or the machine differs from the one known before. */
  changed: boolean;
  /** The first fetch since the agent started. */
  firstFetch: boolean;
}

/** The agent's retry settings (from the server) as a backoff. */
export function retryBackoff(settings: AgentSettings): BackoffPolicy {
  return { initialMs: settings.retryInitialSeconds * 1000, maxMs: settings.retryMaxSeconds * 1000 };
}

export class PolicySource {
  private known: PolicyAnswer | null = null;
  private checkedAt = Number.NEGATIVE_INFINITY;
  private readonly backoff = new Backoff(() => retryBackoff(this.settings));
  /** Why the last fetch failed, if it did. */
  private failure: unknown = null;

  constructor(
    private readonly api: AgentApi,
    private readonly files: AgentStateFiles,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  get answer(): PolicyAnswer | null {
    return this.known;
  }

  get lastError(): unknown {
    return this.failure;
  }

  get settings(): AgentSettings {
    return this.known?.agent ?? DEFAULT_SETTINGS;
  }

  /** The policy saved by the last run of the agent, if any. */
  async loadCached(): Promise<PolicyAnswer | null> {
    this.known = await this.files.readPolicy();
    return this.known;
  }

  /** Whether a fetch is due: no policy yet, or an hour old, and no failure's wait pending. */
  due(now: number): boolean {
    return (!this.known || now - this.checkedAt >= POLICY_REFRESH_MS) && this.backoff.due(now);
  }

  /** Fetch the policy; null when it failed (logged, and retried after the backoff). */
  async refresh(): Promise<PolicyChange | null> {
    try {
      const answer = await this.api.policy();
      const previous = this.known;
      const change: PolicyChange = {
        first: !previous,
        changed:
          !previous ||
          JSON.stringify(answer.policy) !== JSON.stringify(previous.policy) ||
          answer.machine !== previous.machine,
        firstFetch: this.checkedAt === Number.NEGATIVE_INFINITY,
      };
      this.known = answer;
      this.checkedAt = this.clock.now();
      this.backoff.reset();
      this.failure = null;
      await this.files.writePolicy(answer);
      return change;
    } catch (error) {
      this.failed(error);
      return null;
    }
  }

  private failed(error: unknown): void {
    this.failure = error;
    if (error instanceof AuthError)
      this.log.error({ error: errorMessage(error) }, 'the server refuses this agent token');
    if (error instanceof UntrustedServerError)
      this.log.error({ error: errorMessage(error) }, 'the server is not trusted: nothing was sent to it');
    const retryAt = this.backoff.fail(this.clock.now());
    this.log.warn(
      { error: errorMessage(error), retryAt: new Date(retryAt).toISOString(), cached: this.known !== null },
      'cannot fetch the policy',
    );
  }
}
